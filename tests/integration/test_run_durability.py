"""Ordering, resume and flat history: the properties that make the loop durable."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from sqlmodel import col, select

from mnemo.fakellm import Fault, Reply
from mnemo.ids import new_id
from mnemo.schemas.runs import AgentWorkflowState
from mnemo.store.tables import AgentRow, MessageRow, RunRow, StepRow
from tests.fixtures.mnemo import TEST_POLICY, Mnemo
from workflows import names

BLOCKS = [{"label": "persona", "value": "I am Sam."}, {"label": "human", "value": "Name: Ada"}]


async def test_concurrent_sends_to_one_agent_run_one_at_a_time_in_order(mnemo: Mnemo) -> None:
    agent = await mnemo.create_agent(memory_blocks=BLOCKS)
    mnemo.fake.set_policy("echo")
    texts = [f"message {i}" for i in range(20)]
    # Submitted concurrently; arrival order is whatever order the updates were accepted in.
    runs = await asyncio.gather(*(mnemo.runs.send(agent.id, [{"role": "user", "content": t}]) for t in texts))
    done = [await mnemo.runs.wait(r.id, timeout=120) for r in runs]
    assert all(r.stop_reason == "end_turn" for r in done)
    ctx = (await mnemo.context_texts(agent.id))[1:]
    assert len(ctx) == 40
    # Never interleaved: each user message is followed by the reply to that same message.
    for (urole, utext), (arole, atext) in zip(ctx[::2], ctx[1::2], strict=True):
        assert (urole, arole) == ("user", "assistant")
        assert atext == f"echo: {utext}"
    # And strictly one after another: no run started before the previous one finished.
    async with mnemo.db.session() as s:
        order = [
            m.run_id
            for m in (
                await s.exec(
                    select(MessageRow)
                    .where(MessageRow.agent_id == agent.id, MessageRow.role == "assistant")
                    .order_by(col(MessageRow.seq))
                )
            ).all()
        ]
        rows = {r.id: r for r in (await s.exec(select(RunRow).where(RunRow.agent_id == agent.id))).all()}
        first_step = {
            st.run_id: st.created_at
            for st in (
                await s.exec(select(StepRow).where(StepRow.agent_id == agent.id, StepRow.step_index == 0))
            ).all()
        }
    for prev, nxt in zip(order, order[1:], strict=False):
        assert rows[prev].completed_at is not None and rows[prev].completed_at <= first_step[nxt]
    # Each model call saw exactly the conversation so far: no other run's message leaked in.
    for i, request in enumerate(mnemo.fake.chat_requests):
        users = [m["content"] for m in request["messages"] if m["role"] == "user"]
        assert len(users) == i + 1


async def test_failed_run_resumes_without_repeating_finished_steps(mnemo: Mnemo) -> None:
    agent = await mnemo.create_agent(memory_blocks=BLOCKS)
    mnemo.fake.script(
        Reply.tool_call("memory_insert", {"label": "human", "new_string": "Likes chess"}),
        *[Fault.server_error(500) for _ in range(TEST_POLICY.llm_max_attempts)],
    )
    run = await mnemo.send(agent.id, "I like chess")
    assert (run.status, run.stop_reason) == ("failed", "llm_api_error")
    assert len(mnemo.fake.chat_requests) == 1 + TEST_POLICY.llm_max_attempts

    mnemo.fake.script(Reply.text("Chess it is."))  # the provider is back
    # Resume through the CLI, as a user would: `mnemo runs resume RUN_ID` waits for the run to end.
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "mnemo"),
        "runs",
        "resume",
        run.id,
        env={
            **os.environ,
            "DATABASE_URL": mnemo.db.url,
            "MNEMO_TASK_QUEUE": mnemo.task_queue,
            "TEMPORAL_ADDRESS": mnemo.client.service_client.config.target_host,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, out.decode()
    assert f"run {run.id}: completed (end_turn)" in out.decode()
    resumed = await mnemo.runs.wait(run.id, timeout=60)
    assert (resumed.status, resumed.stop_reason) == ("completed", "end_turn")
    assert len(mnemo.fake.chat_requests) == 2 + TEST_POLICY.llm_max_attempts  # step 1 was not called again
    msgs = await mnemo.messages(agent.id)
    assert [m.role for m in msgs if m.run_id == run.id] == ["user", "assistant", "tool", "assistant"]
    block_history = mnemo.fake.chat_requests[-1]["messages"][0]["content"]
    assert block_history.count("Likes chess") == 1  # the edit was applied once
    assert resumed.usage and resumed.usage["step_count"] == 2


async def _seed_history(mnemo: Mnemo, agent_id: str, n: int) -> None:
    async with mnemo.db.transaction() as s:
        agent = await s.get(AgentRow, agent_id)
        assert agent is not None
        ids = []
        for i in range(n):
            mid = new_id("message")
            role = "user" if i % 2 == 0 else "assistant"
            s.add(
                MessageRow(
                    id=mid,
                    agent_id=agent_id,
                    role=role,
                    content=[{"type": "text", "text": f"old {role} message {i} " + "x" * 200}],
                    text=f"old message {i}",
                )
            )
            ids.append(mid)
        agent.message_ids = [*agent.message_ids, *ids]
        s.add(agent)


async def _history_bytes(mnemo: Mnemo, run_id: str) -> int:
    handle = mnemo.client.get_workflow_handle(names.run_workflow_id(run_id))
    await handle.result()  # the run row is final before the workflow closes: wait for the whole history
    history = await handle.fetch_history()
    return sum(event.ByteSize() for event in history.events)


async def test_history_per_step_does_not_grow_with_the_conversation(mnemo: Mnemo) -> None:
    sizes = {}
    for prior in (10, 2000):
        # A window the 2,000 messages fit in: this test is about history, not compaction.
        big = {
            "model": "fake",
            "model_endpoint_type": "openai",
            "model_endpoint": mnemo.fake.base_url,
            "context_window": 10_000_000,
        }
        agent = await mnemo.create_agent(memory_blocks=BLOCKS, llm_config=big)
        await _seed_history(mnemo, agent.id, prior)
        mnemo.fake.script(
            Reply.tool_call("memory_insert", {"label": "human", "new_string": "Likes go"}),
            Reply.text("Noted."),
        )
        run = await mnemo.send(agent.id, "I like go")
        assert run.stop_reason == "end_turn" and run.usage and run.usage["step_count"] == 2
        sizes[prior] = await _history_bytes(mnemo, run.id) / 2
    # Requests to the model grew a lot; Temporal history per step did not.
    assert len(json.dumps(mnemo.fake.chat_requests[-1])) > 100 * 2000
    assert abs(sizes[2000] - sizes[10]) <= 0.10 * sizes[10], sizes
    assert sizes[2000] <= 3 * 1024, sizes


async def test_agent_workflow_continues_as_new_and_keeps_its_queue(mnemo: Mnemo) -> None:
    agent = await mnemo.create_agent(memory_blocks=BLOCKS)
    mnemo.fake.set_policy("echo")
    n = 24  # a run adds ~12 events to the agent workflow: the suite's server suggests continuing as new
    runs = await asyncio.gather(
        *(mnemo.runs.send(agent.id, [{"role": "user", "content": f"n{i}"}]) for i in range(n))
    )
    done = [await mnemo.runs.wait(r.id, timeout=120) for r in runs]
    assert all(r.stop_reason == "end_turn" for r in done)
    handle = mnemo.client.get_workflow_handle(names.agent_workflow_id(agent.id))
    executions = [
        e async for e in mnemo.client.list_workflows(f'WorkflowId = "{names.agent_workflow_id(agent.id)}"')
    ]
    assert len(executions) >= 2, "the suite's dev server suggests continue-as-new after a few runs"
    # The database records a run's end a moment before its workflow closes: poll the query briefly.
    for _ in range(100):
        state = await handle.query(names.STATE_QUERY, result_type=AgentWorkflowState)
        if state.current_run_id is None:
            break
        await asyncio.sleep(0.05)
    assert state.runs_processed == n and state.queued_run_ids == [] and state.current_run_id is None
    ctx = (await mnemo.context_texts(agent.id))[1:]
    assert [t for _, t in ctx[1::2]] == [f"echo: {t}" for _, t in ctx[::2]]


async def test_cancel_running_and_queued_runs(mnemo: Mnemo) -> None:
    agent = await mnemo.create_agent(memory_blocks=BLOCKS)
    mnemo.fake.script(
        Reply.tool_call("conversation_search", {"query": "x"}, delay=1.5),
        Reply.text("never sent"),
    )
    first = await mnemo.runs.send(agent.id, [{"role": "user", "content": "slow"}])
    second = await mnemo.runs.send(agent.id, [{"role": "user", "content": "queued"}])
    handle = mnemo.client.get_workflow_handle(names.agent_workflow_id(agent.id))
    for _ in range(100):  # wait until the first run's model call is in flight
        if mnemo.fake.chat_requests:
            break
        await asyncio.sleep(0.05)
    state = await handle.query(names.STATE_QUERY, result_type=AgentWorkflowState)
    assert state.current_run_id == first.id and state.queued_run_ids == [second.id]
    await mnemo.runs.cancel(agent.id)
    r1, r2 = await mnemo.runs.wait(first.id, timeout=60), await mnemo.runs.wait(second.id, timeout=60)
    assert (r1.status, r1.stop_reason) == ("cancelled", "cancelled")
    assert (r2.status, r2.stop_reason) == ("cancelled", "cancelled")
    # The step in flight finished (with its tool call) and nothing ran after the cancel.
    assert len(mnemo.fake.chat_requests) == 1
    roles = [m.role for m in await mnemo.messages(agent.id) if m.run_id == first.id]
    assert roles == ["user", "assistant", "tool"]
    assert not [m for m in await mnemo.messages(agent.id) if m.run_id == second.id and m.role == "assistant"]
