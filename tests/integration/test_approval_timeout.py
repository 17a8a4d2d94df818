"""Approvals as durable waits, on the time-skipping test server: an answer three (simulated) days later
resumes the run; an unanswered request is denied when its timeout fires. Real worker, Postgres and
fake LLM; only the clock is skipped.

The time-skipping server cannot register custom search attributes, so these runs go without them
(`RunPolicy.search_attributes=False`); everything else is the production path."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from api.approvals import ApprovalCreate, plan_input
from mnemo.fakellm import FakeLLM, Reply
from mnemo.runtime.approvals import pending_approval
from tests.fixtures.mnemo import TEST_POLICY, Mnemo, running_mnemo

DAY = 86_400.0


@pytest.fixture
async def skipping(
    time_skipping_env, database_url: str, fake_llm: FakeLLM, task_queue: str
) -> AsyncIterator[Mnemo]:  # type: ignore[no-untyped-def]
    policy = TEST_POLICY.model_copy(update={"search_attributes": False, "approval_timeout_s": 7 * DAY})
    async with running_mnemo(time_skipping_env.client, database_url, fake_llm, task_queue, policy) as m:
        yield m


async def _agent_waiting_for_approval(m: Mnemo, calls: Counter[str]) -> str:
    async def transfer(amount: int) -> str:
        calls["transfer"] += 1
        return f"moved {amount}"

    tool_id = await m.add_tool("transfer", transfer, {"amount": {"type": "integer"}})
    agent = await m.create_agent(
        memory_blocks=[],
        tool_ids=[tool_id],
        tool_rules=[{"tool_name": "transfer", "type": "requires_approval"}],
    )
    m.fake.script(Reply.tool_call("transfer", {"amount": 5}, id="call_1"))
    run = await m.send(agent.id, "send Bob 5")
    assert (run.status, run.stop_reason) == ("completed", "requires_approval")
    return agent.id


async def _answer(m: Mnemo, agent_id: str, approve: bool) -> str:
    answer = ApprovalCreate(approvals=[{"tool_call_id": "call_1", "approve": approve}])  # type: ignore[list-item]
    async with m.db.session() as s:
        plan = await plan_input(s, agent_id, [answer], [])
    run = await m.runs.send(
        agent_id, plan.messages, request_config=plan.request_config, approval=plan.approval
    )
    return (await m.runs.wait(run.id, timeout=60)).stop_reason or ""


async def test_approval_three_days_later_resumes_the_run(skipping: Mnemo, time_skipping_env) -> None:  # type: ignore[no-untyped-def]
    calls: Counter[str] = Counter()
    agent_id = await _agent_waiting_for_approval(skipping, calls)
    await time_skipping_env.sleep(timedelta(days=3))
    async with skipping.db.session() as s:
        assert await pending_approval(s, agent_id) is not None  # still waiting after 3 days
    skipping.fake.script(Reply.text("Sent."))
    assert await _answer(skipping, agent_id, approve=True) == "end_turn"
    assert calls["transfer"] == 1


async def test_unanswered_approval_is_denied_at_the_timeout(skipping: Mnemo, time_skipping_env) -> None:  # type: ignore[no-untyped-def]
    calls: Counter[str] = Counter()
    agent_id = await _agent_waiting_for_approval(skipping, calls)
    await time_skipping_env.sleep(timedelta(days=6))
    async with skipping.db.session() as s:
        assert await pending_approval(s, agent_id) is not None  # not yet: the timeout is 7 days
    await time_skipping_env.sleep(timedelta(days=1, hours=1))
    denial = None
    for _ in range(200):
        denial = next((m for m in await skipping.messages(agent_id) if m.role == "tool"), None)
        if denial is not None:
            break
        await asyncio.sleep(0.05)
    assert denial is not None and denial.is_err and calls["transfer"] == 0
    assert json.loads(denial.content[0]["text"])["message"] == (
        "Nobody answered the approval request within 168 hours, so the tool call was denied."
    )
    agent = await skipping.agent(agent_id)
    assert denial.id in agent.message_ids  # the model will see it next turn
    # The agent takes messages again; a late approval finds nothing pending.
    async with skipping.db.session() as s:
        assert await pending_approval(s, agent_id) is None
    skipping.fake.script(Reply.text("Hello."))
    run = await skipping.send(agent_id, "hi")
    assert run.stop_reason == "end_turn"
    roles = [m.role for m in await skipping.messages(agent_id) if m.role != "system"]
    assert roles.count("tool") == 1
