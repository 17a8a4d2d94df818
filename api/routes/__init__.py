"""The API's routers, in mount order. Each is mounted under `/v1` and mirrored under `/latest`."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import agents, health, messages, streams

ROUTERS: list[APIRouter] = [health.router, agents.router, messages.router, streams.router]

# Paths (relative to a prefix) served without an API key.
OPEN_PATHS: tuple[str, ...] = health.OPEN_PATHS
