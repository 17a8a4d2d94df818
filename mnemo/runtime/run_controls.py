"""What a run's workflow needs to steer its loop, read when the run starts: the agent's steering tool
rules with its tool names, and the pending calls the run answers if it is an approval."""

from __future__ import annotations

from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.runtime.approvals import approvals_of_run, client_tools
from mnemo.runtime.context import agent_tools
from mnemo.store.tables import AgentRow, RunRow
from mnemo.tools.solver import control_rules


async def run_controls(s: AsyncSession, run: RunRow) -> dict[str, Any]:
    """Fields of the run's ResumePoint; empty for the common run (no steering rules, no approval)."""
    out: dict[str, Any] = {}
    rules = (await s.exec(select(AgentRow.tool_rules).where(AgentRow.id == run.agent_id))).one_or_none()
    steering = control_rules(rules or [])
    if steering:
        names = [t.name for t in await agent_tools(s, run.agent_id)]
        names += [t["name"] for t in client_tools(run) if t["name"] not in names]
        out |= {"tool_rules": steering, "tool_names": names}
    if (run.request_config or {}).get("approval_request_id"):
        out["approvals"] = await approvals_of_run(s, run)
    return out
