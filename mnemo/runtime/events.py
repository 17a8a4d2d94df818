"""The per-run event log `(run_id, seq_id, event)` that SSE streams read and resume from.

Events are written in the same transaction as the state they describe, so a retried activity that
rolled back never leaves an event behind, and a committed step always has its events. A NOTIFY on
`CHANNEL` (delivered at commit) wakes readers in any API process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.store.tables import RunEventRow, RunRow

CHANNEL = "mnemo_run_events"


async def append(session: AsyncSession, run_id: str, events: Sequence[dict[str, Any]]) -> list[int]:
    """Append events to a run's log and return their seq_ids (1-based, gap-free per run)."""
    if not events:
        return []
    # Lock the run row: writers of one run are serialized, so seq_ids never collide.
    await session.exec(select(RunRow.id).where(RunRow.id == run_id).with_for_update())
    last = (
        await session.exec(
            select(sa.func.coalesce(sa.func.max(RunEventRow.seq_id), 0)).where(RunEventRow.run_id == run_id)
        )
    ).one()
    seq_ids = list(range(int(last) + 1, int(last) + 1 + len(events)))
    rows = [
        {"run_id": run_id, "seq_id": s, "event": {**e, "seq_id": s}}
        for s, e in zip(seq_ids, events, strict=True)
    ]
    await session.execute(sa.insert(RunEventRow), rows)
    await session.execute(sa.select(sa.func.pg_notify(CHANNEL, run_id)))
    return seq_ids


async def read(
    session: AsyncSession, run_id: str, starting_after: int = 0, limit: int = 1000
) -> list[dict[str, Any]]:
    rows = await session.exec(
        select(RunEventRow.event)
        .where(RunEventRow.run_id == run_id, col(RunEventRow.seq_id) > starting_after)
        .order_by(col(RunEventRow.seq_id))
        .limit(limit)
    )
    return list(rows.all())
