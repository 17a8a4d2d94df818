"""Restart the infrastructure under a running run: the Temporal dev server (SIGKILL, then start it again
on the same port and SQLite file) and Postgres (a fast shutdown that cuts every connection, then start).

Reconnection, as temporalio 1.35 does it (measured on these machines; nothing in Mnemo handles it):
- A `Client` is one gRPC channel that reconnects by itself, so neither the test process's client nor
  the worker's is ever reconnected here. A call made while the server is down is retried inside the
  client (RetryConfig: 100 ms backoff, at most 10 retries / 10 s) and then raises `RPCError`
  (Unavailable, "tcp connect error", after ~10 s); a call whose retries span the restart just succeeds.
- The worker's pollers keep retrying through the outage and resume on the restarted server: the worker
  process neither exits nor needs a restart (the second run below runs on it).
- The model call in flight finishes and commits its step to Postgres while Temporal is down. In our
  runs the outage outlasted the 3 s heartbeat timeout, so the restarted server timed that attempt out
  and scheduled attempt 2; the old worker's late completion was rejected ("Activity not found on
  completion" in its log), and attempt 2 found the step committed (`steps.status = success`) and
  replayed its outcome without calling the model. Had the completion arrived first, attempt 1 would
  simply have completed: either way the model is called once per step, which is what is asserted.

Postgres: the worker's pool (`pool_pre_ping`) and the RunService's LISTEN connection reconnect by
themselves. While Postgres is down every `llm.step` attempt fails at its first query and spends the
LLM retry budget (CHAOS_POLICY allows 20 attempts). Temporal shows those attempts' failure as "Failure
exceeds size limit.": the chained psycopg/SQLAlchemy tracebacks are too big for the server to keep.
"""

from __future__ import annotations

import time

import pytest
from temporalio.api.enums.v1 import EventType

from mnemo.fakellm import Reply
from tests.chaos.checks import assert_intact, load, same_context
from tests.chaos.harness import Chaos
from workflows import names

pytestmark = pytest.mark.chaos

BLOCKS = [{"label": "persona", "value": "I am Sam."}, {"label": "human", "value": "Name: Ada"}]
SLOW_S = 3.0


async def _llm_attempts(chaos: Chaos, run_id: str) -> list[int]:
    """The attempt that completed each step's `llm.step`, in step order (history keeps only the last)."""
    history = await chaos.client.get_workflow_handle(names.run_workflow_id(run_id)).fetch_history()
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    return [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and scheduled[e.activity_task_started_event_attributes.scheduled_event_id] == names.LLM_STEP
    ]


async def test_temporal_server_restarted_during_a_model_call(chaos: Chaos) -> None:
    agent = await chaos.create_agent(memory_blocks=BLOCKS)
    chaos.fake.script(
        Reply.tool_call("memory_insert", {"label": "human", "new_string": "Likes go"}),
        Reply.text("Still here.", delay=SLOW_S),  # Temporal dies while this call is in flight
        Reply.text("Again."),  # the second run, after the restart
    )
    run_id = await chaos.send(agent.id, "I like go")
    await chaos.chat_requests_reach(2)
    assert await chaos.step_status(run_id, 1) == "pending"
    chaos.temporal.kill()
    killed_at = time.monotonic()

    async def committed() -> bool:
        return await chaos.step_status(run_id, 1) == "success"

    # The worker finishes the step against Postgres with Temporal gone; only reporting it must wait.
    await chaos.until(committed, "the in-flight step to commit while Temporal is down")
    down_s = time.monotonic() - killed_at
    chaos.temporal.start()  # same port, same SQLite file
    restarted_at = time.monotonic()
    run = await chaos.wait_run(run_id)
    attempts = await _llm_attempts(chaos, run_id)  # the test process's client, never reconnected
    print(
        f"\n[chaos] Temporal SIGKILLed for {down_s:.1f}s during a model call: run finished "
        f"{time.monotonic() - restarted_at:.1f}s after the restart; final llm.step attempt per step: {attempts}"
    )

    # The model was called once per step: the step that finished during the outage was not redone.
    assert len(chaos.fake.chat_requests) == 2
    state = await load(chaos.db, run.id)
    assert_intact(state, ["user", "assistant", "tool", "assistant"])
    assert state.messages[-1].text == "Still here."
    assert chaos.worker_alive()

    # The agent's workflow and the clients carry on: a new message is a normal run.
    before = state.agent.message_ids
    second = await chaos.wait_run(await chaos.send(agent.id, "still there?"))
    assert_intact(await load(chaos.db, second.id), ["user", "assistant"], previous=before)
    assert len(chaos.fake.chat_requests) == 3
    assert chaos.temporal.starts == 2


async def test_postgres_restarted_during_a_model_call(chaos: Chaos) -> None:
    agent = await chaos.create_agent(memory_blocks=BLOCKS)
    chaos.fake.script(
        Reply.tool_call("memory_insert", {"label": "human", "new_string": "Likes tea"}),
        Reply.text("Tea it is.", delay=SLOW_S),  # Postgres stops while this call is in flight
    )
    chaos.fake.set_default(Reply.text("Tea it is."))  # the retry once Postgres is back
    run_id = await chaos.send(agent.id, "I like tea")
    await chaos.chat_requests_reach(2)
    assert await chaos.step_status(run_id, 1) == "pending"
    chaos.pg.stop()
    stopped_at = time.monotonic()
    assert not chaos.pg.is_running()

    failures: list[str] = []

    async def hit_the_outage() -> bool:
        # The model answered, the commit failed, and Temporal is retrying the step.
        for act in await chaos.pending_activities(run_id):
            if act.activity_type.name == names.LLM_STEP and act.attempt >= 2 and act.last_failure.message:
                failures.append(act.last_failure.message)
                return True
        return False

    await chaos.until(hit_the_outage, "the worker to fail the step on the stopped Postgres")
    chaos.pg.start()
    restarted_at = time.monotonic()
    run = await chaos.wait_run(run_id)
    attempts = await _llm_attempts(chaos, run_id)
    print(
        f"\n[chaos] Postgres stopped for {restarted_at - stopped_at:.1f}s during a model call "
        f"(worker saw: {failures[0][:120]!r}); run finished {time.monotonic() - restarted_at:.1f}s after "
        f"the restart; final llm.step attempt per step: {attempts}; model requests: {len(chaos.fake.chat_requests)}"
    )

    state = await load(chaos.db, run.id)
    assert_intact(state, ["user", "assistant", "tool", "assistant"])
    assert state.messages[-1].text == "Tea it is."
    requests = chaos.fake.chat_requests
    # The reply that came back during the outage was never committed, so the step asked again, once,
    # with the same context: attempts that failed on the dead database wrote nothing.
    assert len(requests) == 3, [r["messages"][-1] for r in requests]
    assert same_context(requests[1], requests[2])
    assert chaos.worker_alive()
