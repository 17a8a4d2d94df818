"""What routes need (database, Temporal client, run service), created on first use per process.

Lazy, so the API answers health checks at once even while Temporal or Postgres is still starting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Depends, HTTPException, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from api.runs import RunService
from mnemo.config import Settings
from mnemo.store.db import Database

RowT = TypeVar("RowT")


@dataclass
class Services:
    settings: Settings
    db: Database
    runs: RunService

    async def close(self) -> None:
        await self.runs.close()
        await self.db.dispose()


_lock = asyncio.Lock()


async def get_services(request: Request) -> Services:
    services: Services | None = getattr(request.app.state, "services", None)
    if services is not None:
        return services
    async with _lock:
        services = getattr(request.app.state, "services", None)
        if services is None:
            services = await _connect(request.app.state.settings)
            request.app.state.services = services
    return services


async def _connect(settings: Settings) -> Services:
    from worker.client import connect

    try:
        db = Database.from_settings(settings)
    except RuntimeError as exc:
        raise HTTPException(503, f"database unavailable: {exc}") from exc
    try:
        client = await connect(settings)
    except Exception as exc:
        await db.dispose()
        raise HTTPException(
            503, f"Temporal at {settings.temporal_target} is unavailable ({exc}); start it with `mnemo up`"
        ) from exc
    runs = RunService(
        client, db, settings.task_queue, settings.run_policy(), outage_grace_s=settings.db_outage_grace_s
    )
    await runs.start()
    return Services(settings, db, runs)


async def session(services: Services = Depends(get_services)) -> AsyncIterator[AsyncSession]:
    async with services.db.session() as s:
        yield s


async def row_or_404(s: AsyncSession, model: type[RowT], key: Any, message: str) -> RowT:
    """The row of `model` with primary key `key`, or a 404 saying `message`."""
    row = await s.get(model, key)
    if row is None:
        raise HTTPException(404, message)
    return row
