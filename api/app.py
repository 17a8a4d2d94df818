"""The FastAPI application: Letta-compatible routes under `/v1`, mirrored under `/latest`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import mnemo
from api.auth import ApiKeyMiddleware
from api.errors import install_error_handlers
from api.routes import OPEN_PATHS, ROUTERS
from mnemo.config import Settings, get_settings

# Letta mounts every router under /v1 and mirrors it, hidden from the schema, under /latest.
PREFIXES: tuple[tuple[str, bool], ...] = (("/v1", True), ("/latest", False))


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    services = getattr(app.state, "services", None)  # created on first use by api.deps
    if services is not None:
        await services.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Mnemo",
        version=mnemo.__version__,
        description="Letta-compatible agent server",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    for prefix, in_schema in PREFIXES:
        for router in ROUTERS:
            app.include_router(router, prefix=prefix, include_in_schema=in_schema)
    install_error_handlers(app)
    api_key = settings.api_key.get_secret_value() if settings.api_key else ""
    if api_key:
        open_paths = [prefix + path for prefix, _ in PREFIXES for path in OPEN_PATHS]
        app.add_middleware(ApiKeyMiddleware, api_key=api_key, open_paths=open_paths)
    return app
