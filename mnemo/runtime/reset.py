"""Resetting an agent's in-context messages (Letta's `PATCH /v1/agents/{id}/reset-messages`).

Only the system message stays in the context window (with `add_default_initial_messages`, followed by
the boot sequence a new agent of its type starts with). Unlike Letta, which deletes the dropped messages,
Mnemo keeps them in Postgres: they leave the context but stay in recall memory (searchable with
`conversation_search`, listed by `GET .../messages`), and the recompiled system message counts them.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.runtime.agents import recompile_system_message
from mnemo.runtime.approvals import pending_approval
from mnemo.runtime.context import load_agent
from mnemo.runtime.initial_messages import default_initial_messages, put_after_system
from mnemo.store.tables import AgentRow, RunRow

ACTIVE_RUN_STATUSES = ("created", "running")


class AgentBusy(RuntimeError):
    """The agent has runs queued or running (resetting under them would cut a turn in half), or tool calls
    waiting for a human's approval."""

    def __init__(self, agent_id: str, run_ids: list[str], message: str | None = None) -> None:
        super().__init__(
            message
            or f"Agent {agent_id} has runs in progress ({', '.join(run_ids)}); wait for them to end or cancel "
            f"them (POST /v1/agents/{agent_id}/messages/cancel) before replacing its in-context messages"
        )
        self.run_ids = run_ids


async def active_run_ids(session: AsyncSession, agent_id: str) -> list[str]:
    stmt = (
        select(RunRow.id)
        .where(RunRow.agent_id == agent_id, col(RunRow.status).in_(ACTIVE_RUN_STATUSES))
        .order_by(col(RunRow.created_at))
    )
    return list((await session.exec(stmt)).all())


async def check_context_editable(session: AsyncSession, agent_id: str, keeps: Collection[str] = ()) -> None:
    """Raise `AgentBusy` unless the agent's in-context messages may be replaced now: no run queued or
    running (it would lose half a turn), and no approval request waiting unless the new context `keeps`
    it (dropped, it would stay pending in the agent workflow yet be invisible to the API). Call with
    the agent row locked."""
    busy = await active_run_ids(session, agent_id)
    if busy:
        raise AgentBusy(agent_id, busy)
    waiting = await pending_approval(session, agent_id)
    if waiting is not None and waiting[0].id not in keeps:
        raise AgentBusy(
            agent_id,
            [],
            f"Agent {agent_id} is waiting for approval of tool calls {', '.join(waiting[1])}; approve or deny "
            f"them (an approval message to POST /v1/agents/{agent_id}/messages) before replacing its "
            "in-context messages",
        )


async def reset_messages(
    session: AsyncSession, agent_id: str, *, add_default_initial_messages: bool = False
) -> AgentRow:
    """Keep only the system message in context (followed by Letta's boot sequence for heartbeat agents
    when `add_default_initial_messages`) and recompile it. Call in a transaction.

    The agent row is locked first: a run created meanwhile references it (a key-share lock) and so
    waits for this transaction, and then sees the reset context.
    """
    agent = await load_agent(session, agent_id, for_update=True)
    await check_context_editable(session, agent_id)
    # letta_v1_agent and sleeptime_agent have no default initial messages: only heartbeat agents boot.
    boot = default_initial_messages(agent, datetime.now(UTC)) if add_default_initial_messages else []
    await put_after_system(session, agent, boot)
    await recompile_system_message(session, agent)
    await session.refresh(agent)
    return agent
