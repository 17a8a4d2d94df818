"""`mnemo api`: one API process in the foreground."""

from __future__ import annotations

import uvicorn

from api.app import create_app
from mnemo.config import get_settings


def serve(host: str | None = None, port: int | None = None) -> None:
    """Serve until SIGTERM/SIGINT (uvicorn shuts down gracefully on both)."""
    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="info",
        # Letta clients hold SSE streams open; let them finish briefly on shutdown, then go.
        timeout_graceful_shutdown=5,
    )
