"""Waiting for runs to finish without polling: one LISTEN connection per process on the event channel.

Every event a run writes (its messages, its stop reason) NOTIFYs `mnemo_run_events` with the run id at
commit; waiters re-read the run from the database when woken, so a missed notification only delays,
never loses, a wake-up (a periodic re-check covers a dropped connection).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

import psycopg

from mnemo.runtime.events import CHANNEL
from mnemo.store.db import libpq_url

RECHECK_S = 1.0


class RunWaiter:
    def __init__(self, database_url: str) -> None:
        self._url = libpq_url(database_url)
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen())
            await asyncio.wait_for(self._ready.wait(), timeout=30)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._ready.set()
                    self._wake_all()  # anything that happened while we were not listening
                    async for note in conn.notifies():
                        for event in self._waiters.get(note.payload, ()):
                            event.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Postgres restarted or the connection dropped: waiters fall back to re-checking.
                self._wake_all()
                await asyncio.sleep(0.5)

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    @contextlib.contextmanager
    def subscribe(self, run_id: str):  # type: ignore[no-untyped-def]
        event = asyncio.Event()
        self._waiters[run_id].add(event)
        try:
            yield event
        finally:
            self._waiters[run_id].discard(event)
            if not self._waiters[run_id]:
                del self._waiters[run_id]

    @staticmethod
    async def wait_event(event: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=RECHECK_S)
        event.clear()
