"""A run waiting for a human's approval survives everything: the worker SIGKILLed and the Temporal
dev server SIGKILLed and restarted while the approval is pending. The answer, given afterwards, runs
the side-effecting tool exactly once and the agent goes on."""

from __future__ import annotations

import pytest

from api.approvals import ApprovalCreate, plan_input
from mnemo.fakellm import Reply
from mnemo.runtime.approvals import pending_approval
from tests.chaos.harness import Chaos
from tests.chaos.worker_proc import TOOL_NAME

pytestmark = pytest.mark.chaos


async def test_pending_approval_survives_worker_and_temporal_restarts(chaos: Chaos) -> None:
    chaos.workers.prepare()
    await chaos.add_counting_tool()
    agent = await chaos.create_agent(
        memory_blocks=[],
        tools=[TOOL_NAME],
        tool_rules=[{"tool_name": TOOL_NAME, "type": "requires_approval"}],
    )
    chaos.fake.script(Reply.tool_call(TOOL_NAME, {"label": "pay"}, id="call_pay"), Reply.text("Paid."))
    first = await chaos.wait_run(await chaos.send(agent.id, "pay the bill"))
    assert (first.status, first.stop_reason) == ("completed", "requires_approval")
    assert await chaos.counter_lines() == []

    chaos.workers.kill()
    chaos.temporal.kill()
    chaos.temporal.start()  # same port, same SQLite file
    chaos.workers.start()

    async with chaos.db.session() as s:
        assert await pending_approval(s, agent.id) is not None
        plan = await plan_input(
            s,
            agent.id,
            [ApprovalCreate(approvals=[{"tool_call_id": "call_pay", "approve": True}])],
            [],  # type: ignore[list-item]
        )
    answer = await chaos.runs.send(agent.id, plan.messages, request_config=plan.request_config, approval=True)
    run = await chaos.wait_run(answer.id)
    assert (run.status, run.stop_reason) == ("completed", "end_turn")
    assert [line.split()[0] for line in await chaos.counter_lines()] == ["pay"]  # exactly once
    messages = [m for m in await _messages(chaos, agent.id) if m.role in ("approval", "tool", "assistant")]
    assert [m.role for m in messages] == ["approval", "approval", "tool", "assistant"]
    assert [m.tool_call_id for m in messages if m.role == "tool"] == ["call_pay"]
    assert len(chaos.fake.chat_requests) == 2
    assert chaos.temporal.starts == 2


async def _messages(chaos: Chaos, agent_id: str) -> list:  # type: ignore[type-arg]
    from sqlmodel import col, select

    from mnemo.store.tables import MessageRow

    async with chaos.db.session() as s:
        rows = await s.exec(
            select(MessageRow).where(MessageRow.agent_id == agent_id).order_by(col(MessageRow.seq))
        )
        return list(rows.all())
