"""What a run's workflow needs to steer its loop, read when the run starts: the agent's steering tool
rules with its tool names, and the pending calls the run answers if it is an approval."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.runtime.approvals import approvals_of_run, client_tools
from mnemo.runtime.context import agent_tools
from mnemo.store.tables import AgentRow, MessageRow, RunRow, StepRow
from mnemo.tools.prefill import INVALID_PREFILL
from mnemo.tools.solver import CONSTRAINT_ERROR, control_rules

# Returns of calls that never ran: outside the rules' allowed set, or with a rule's invalid arguments.
REFUSALS = (CONSTRAINT_ERROR, INVALID_PREFILL)


async def run_controls(s: AsyncSession, run: RunRow, first_step: int = 0) -> dict[str, Any]:
    """Fields of the run's ResumePoint; empty for the common run (no steering rules, no approval).
    `first_step` > 0: the run resumes there, and the rules see the tools it already ran."""
    out: dict[str, Any] = {}
    rules = (await s.exec(select(AgentRow.tool_rules).where(AgentRow.id == run.agent_id))).one_or_none()
    steering = control_rules(rules or [])
    if steering:
        names = [t.name for t in await agent_tools(s, run.agent_id)]
        names += [t["name"] for t in client_tools(run) if t["name"] not in names]
        out |= {"tool_rules": steering, "tool_names": names}
        if first_step > 0:
            out["tool_history"], out["last_output"] = await _tools_run_before(s, run.id, first_step)
    if (run.request_config or {}).get("approval_request_id"):
        out["approvals"] = await approvals_of_run(s, run)
    return out


async def _tools_run_before(s: AsyncSession, run_id: str, first_step: int) -> tuple[list[str], str | None]:
    """The tools the run ran before `first_step` (with the approvals it answered first), in order, as
    its workflow's rule solver recorded them: calls refused by a rule never ran and are not in it. And
    the last one's output (what a conditional rule on it reads)."""
    later_steps = select(StepRow.id).where(StepRow.run_id == run_id, StepRow.step_index >= first_step)
    rows = (
        await s.exec(
            select(MessageRow)
            .where(
                MessageRow.run_id == run_id,
                MessageRow.role == "tool",
                sa.or_(col(MessageRow.step_id).is_(None), col(MessageRow.step_id).not_in(later_steps)),
            )
            .order_by(col(MessageRow.seq))
        )
    ).all()
    history: list[str] = []
    last_output: str | None = None
    for row in rows:
        output = str((row.tool_returns or [{}])[0].get("tool_return") or "")
        if row.is_err and output.startswith(REFUSALS):
            continue
        history.append(row.name or "")
        last_output = output
    return history, last_output
