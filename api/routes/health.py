"""`GET /v1/health/`: liveness, open even when an API key is required."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

import mnemo

router = APIRouter(tags=["health"])

# Paths (relative to the /v1 and /latest prefixes) that auth lets through without a key.
OPEN_PATHS: tuple[str, ...] = ("/health", "/health/")


class Health(BaseModel):
    version: str
    status: Literal["ok"]


@router.get("/health/", response_model=Health)
@router.get("/health", response_model=Health, include_in_schema=False)
async def health() -> Health:
    return Health(version=mnemo.__version__, status="ok")
