"""SIGKILL the worker process in the middle of a run: the run finishes on a new worker, nothing is
repeated and nothing is lost.

How recovery works here: with regular activities the killed worker stops heartbeating, so Temporal
times its `llm.step` or `tools.execute` attempt out after the policy's heartbeat timeout (3 s) and
schedules a retry, which the next worker picks up. With local activities the whole workflow task times
out instead (the policy's workflow task timeout, 5 s) and the next worker replays the run and runs the
step again (idempotent: a committed step or a recorded tool return is never redone). Either way the
run's next workflow task first waits on the dead worker's sticky queue for the worker's sticky
schedule-to-start timeout (2 s, worker/main.py) before any other worker may take it.
"""

from __future__ import annotations

import time

import pytest

from mnemo.fakellm import Reply
from mnemo.runtime.tools import INTERRUPTED
from tests.chaos.checks import assert_intact, load, same_context
from tests.chaos.harness import Chaos
from tests.chaos.worker_proc import TOOL_NAME

# Both ways of running a step: regular activities (a dead worker is noticed by the heartbeat timeout)
# and local activities (by the workflow task timeout; the product's default, the faster path).
pytestmark = [
    pytest.mark.chaos,
    pytest.mark.parametrize("chaos", [False, True], indirect=True, ids=["activities", "local-activities"]),
]

BLOCKS = [{"label": "persona", "value": "I am Sam."}, {"label": "human", "value": "Name: Ada"}]
SLOW_S = 3.0  # how long the fake LLM holds the call the test kills the worker in


async def test_worker_killed_during_a_model_call(chaos: Chaos) -> None:
    chaos.workers.prepare()  # the replacement warms up while the first worker runs
    agent = await chaos.create_agent(memory_blocks=BLOCKS)
    chaos.fake.script(
        Reply.tool_call("memory_insert", {"label": "human", "new_string": "Likes chess"}),
        Reply.text("Chess it is.", delay=SLOW_S),  # step 2: the worker dies while this is in flight
        Reply.text("Chess it is."),  # the retry on the next worker
    )
    run_id = await chaos.send(agent.id, "I like chess")
    await chaos.chat_requests_reach(2)
    # Step 1 committed, step 2 has not: the kill lands between a model call and its commit.
    assert await chaos.step_status(run_id, 0) == "success"
    assert await chaos.step_status(run_id, 1) == "pending"
    killed = chaos.workers.kill()
    killed_at = time.monotonic()
    assert killed.returncode == -9

    chaos.workers.start()
    run = await chaos.wait_run(run_id)
    print(
        f"\n[chaos] worker SIGKILLed during model call: run finished {time.monotonic() - killed_at:.1f}s after the kill"
    )

    requests = chaos.fake.chat_requests
    # Step 1 once, step 2 twice (killed attempt + retry), nothing more.
    assert len(requests) == 3, [r["messages"][-1] for r in requests]
    # The retry saw exactly the context the killed attempt saw: the dead attempt left nothing behind.
    assert same_context(requests[1], requests[2])
    assert requests[2]["messages"][-1]["role"] == "tool"
    state = await load(chaos.db, run.id)
    assert_intact(state, ["user", "assistant", "tool", "assistant"])
    assert state.messages[-1].text == "Chess it is."
    assert requests[2]["messages"][0]["content"].count("Likes chess") == 1  # the memory edit, once


async def test_worker_killed_during_a_side_effecting_tool_call(chaos: Chaos) -> None:
    chaos.workers.prepare()
    await chaos.add_counting_tool()
    agent = await chaos.create_agent(memory_blocks=BLOCKS, tools=[TOOL_NAME])
    chaos.fake.script(
        Reply.tool_call(TOOL_NAME, {"label": "charge-card"}),
        Reply.text("I could not confirm the charge."),
    )
    run_id = await chaos.send(agent.id, "Charge my card once")

    async def side_effect_done() -> bool:
        return len(await chaos.counter_lines()) >= 1

    await chaos.until(side_effect_done, "the counting tool's side effect")
    # During the tool's sleep: after its side effect, before its return is recorded.
    killed = chaos.workers.kill()
    killed_at = time.monotonic()
    assert killed.returncode == -9
    assert await chaos.step_status(run_id, 1) is None  # the run was still inside the tool call

    chaos.workers.start()
    run = await chaos.wait_run(run_id)
    print(
        f"\n[chaos] worker SIGKILLed during tool call: run finished {time.monotonic() - killed_at:.1f}s after the kill"
    )

    # The side effect happened exactly once, in the killed worker.
    lines = await chaos.counter_lines()
    assert lines == [f"charge-card pid={killed.pid}"], lines
    state = await load(chaos.db, run.id)
    assert_intact(state, ["user", "assistant", "tool", "assistant"])
    (call_id,) = state.tool_calls()
    (ret,) = state.tool_returns(call_id)
    # Not re-run: the retry recorded that the call was interrupted, and the model was told so.
    assert ret.is_err and ret.tool_returns and ret.tool_returns[0]["status"] == "error"
    assert INTERRUPTED in ret.content[0]["text"]
    started = [e for e in state.events if e.get("message_type") == "tool_execution_started"]
    assert [e["tool_call_id"] for e in started] == [call_id]
    requests = chaos.fake.chat_requests
    assert len(requests) == 2  # the step that asked for the tool was not called again
    assert requests[1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": call_id,
        "content": ret.content[0]["text"],
    }
