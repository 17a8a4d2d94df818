"""The per-run event log `(run_id, seq_id, event)` that SSE streams read and resume from.

Events are written in the same transaction as the state they describe, so a retried activity that
rolled back never leaves an event behind, and a committed step always has its events. A NOTIFY on
`CHANNEL` (delivered at commit) wakes readers in any API process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.store.tables import RunEventRow, RunRow

CHANNEL = "mnemo_run_events"


# Numbers the events after the run's last one, inserts them and wakes readers, in one round trip.
# It runs after the run row is locked (a statement of its own, or the caller's), so its snapshot sees
# every event committed before: numbering inside a single statement that also took the lock would not.
_INSERT = sa.text(
    """
    WITH last AS (
        SELECT coalesce(max(seq_id), 0) AS seq FROM run_events WHERE run_id = :run_id
    ), added AS (
        INSERT INTO run_events (run_id, seq_id, event)
        SELECT :run_id, last.seq + e.n, e.event || jsonb_build_object('seq_id', last.seq + e.n)
        FROM last, jsonb_array_elements(:events) WITH ORDINALITY AS e(event, n)
        RETURNING seq_id
    )
    SELECT min(seq_id), max(seq_id), pg_notify(:channel, :run_id) FROM added
    """
).bindparams(sa.bindparam("events", type_=JSONB), sa.bindparam("channel", CHANNEL))


async def append(
    session: AsyncSession, run_id: str, events: Sequence[dict[str, Any]], *, run_locked: bool = False
) -> list[int]:
    """Append events to a run's log and return their seq_ids (1-based, gap-free per run).

    `run_locked`: the caller's transaction already holds the run row `FOR UPDATE`.
    """
    if not events:
        return []
    if not run_locked:
        # Lock the run row: writers of one run are serialized, so seq_ids never collide.
        await session.execute(sa.select(col(RunRow.id)).where(col(RunRow.id) == run_id).with_for_update())
    params: dict[str, Any] = {"run_id": run_id, "events": list(events)}
    first, last, _ = (await session.execute(_INSERT, params)).one()
    return list(range(int(first), int(last) + 1))


async def read(
    session: AsyncSession, run_id: str, starting_after: int = 0, limit: int = 1000
) -> list[dict[str, Any]]:
    rows = await session.exec(
        select(RunEventRow.event)
        .where(RunEventRow.run_id == run_id, col(RunEventRow.seq_id) > starting_after)
        .order_by(col(RunEventRow.seq_id))
        .limit(limit)
    )
    return [dict(event) for event in rows.all()]
