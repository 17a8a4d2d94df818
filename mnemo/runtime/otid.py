"""`otid` de-duplication: a retried request re-sends its input messages with the same `otid`s, and must
get the run the first attempt started instead of a second one.

The partial unique index `uq_messages_agent_otid` (agent_id, otid) makes the first insert win even
when two attempts race; the loser finds the winner's run with `run_for_otids`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.store.tables import MessageRow, RunRow

OTID_INDEX = "uq_messages_agent_otid"


async def run_for_otids(session: AsyncSession, agent_id: str, otids: Sequence[str]) -> RunRow | None:
    """The run whose input carried one of these otids for this agent, if any."""
    if not otids:
        return None
    stmt = (
        select(RunRow)
        .join(MessageRow, col(MessageRow.run_id) == col(RunRow.id))
        .where(MessageRow.agent_id == agent_id, col(MessageRow.otid).in_(list(otids)))
        .order_by(col(MessageRow.seq))
        .limit(1)
    )
    return (await session.exec(stmt)).first()


def is_otid_conflict(exc: BaseException) -> bool:
    """True if `exc` is the unique violation of `OTID_INDEX` (a concurrent attempt inserted first)."""
    diag = getattr(getattr(exc, "orig", None), "diag", None)
    return getattr(diag, "constraint_name", None) == OTID_INDEX
