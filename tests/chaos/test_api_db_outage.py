"""Postgres restarted while API requests wait on runs: a sync send and an SSE stream ride the outage out
and answer as if nothing happened (no 5xx that a client would answer by sending the message again),
and a wait that outlasts MNEMO_DB_OUTAGE_GRACE_S is a 503 naming the run, without retry.

Real API process (`mnemo api`), worker process, Temporal dev server, chaos Postgres and fake LLM."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from letta_client import AsyncLetta
from sqlmodel import select

from mnemo.fakellm import Reply
from mnemo.store.tables import RunRow
from tests.chaos.api_proc import ApiProcess, SseEvent, api_env, sse_events
from tests.chaos.checks import assert_intact, load
from tests.chaos.harness import Chaos
from workflows import names

pytestmark = pytest.mark.chaos

SLOW_S = 3.0
WAIT_S = 120.0


@pytest.fixture
async def api(chaos: Chaos, tmp_path: Path) -> AsyncIterator[ApiProcess]:
    proc = ApiProcess(
        tmp_path / "api", api_env(chaos.db.url, chaos.temporal.address, chaos.task_queue, tmp_path / "home")
    )
    try:
        yield proc
    finally:
        proc.stop_all()
        assert not proc.leftovers()


async def _runs_of(chaos: Chaos, agent_id: str) -> list[RunRow]:
    async with chaos.db.session() as s:
        return list((await s.exec(select(RunRow).where(RunRow.agent_id == agent_id))).all())


async def _outage_hit(chaos: Chaos, n: int) -> None:
    """Wait until `n` runs have had a model-call attempt fail on the stopped database."""

    async def hit() -> bool:
        failed = 0
        async for wf in chaos.client.list_workflows(f'WorkflowType="{names.RUN_WORKFLOW}"'):
            desc = await chaos.client.get_workflow_handle(wf.id).describe()
            pending = desc.raw_description.pending_activities
            failed += any(a.activity_type.name == names.LLM_STEP and a.attempt >= 2 for a in pending)
        return failed >= n

    await chaos.until(hit, f"{n} runs to fail a model call on the stopped Postgres", within_s=60)


async def test_a_sync_send_and_a_stream_ride_out_a_postgres_restart(chaos: Chaos, api: ApiProcess) -> None:
    told = await chaos.create_agent(memory_blocks=[])
    streamed = await chaos.create_agent(memory_blocks=[])
    chaos.fake.set_default(Reply.text("Tea it is.", delay=SLOW_S))
    await asyncio.to_thread(api.start)
    client = AsyncLetta(base_url=api.base_url, max_retries=0, timeout=WAIT_S)  # a 5xx would fail the test
    received: list[SseEvent] = []

    async def stream() -> None:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=WAIT_S) as http:
            body = {"input": "coffee or tea?"}
            async with http.stream("POST", f"/v1/agents/{streamed.id}/messages/stream", json=body) as r:
                assert r.status_code == 200, await r.aread()
                async for event in sse_events(r):
                    received.append(event)

    sent = asyncio.create_task(client.agents.messages.create(told.id, input="tea or coffee?"))
    streaming = asyncio.create_task(stream())
    await chaos.chat_requests_reach(2)  # both runs are in their model call
    await asyncio.to_thread(chaos.pg.stop)
    await _outage_hit(chaos, 2)
    await asyncio.to_thread(chaos.pg.start)

    response = await asyncio.wait_for(sent, WAIT_S)
    await asyncio.wait_for(streaming, WAIT_S)
    assert response.stop_reason.stop_reason == "end_turn"
    assert [m.content for m in response.messages if m.message_type == "assistant_message"] == ["Tea it is."]
    assert received[-1].done and sum(e.done for e in received) == 1
    events = [e.json() for e in received if not e.done and e.json().get("message_type") != "ping"]
    seqs = [e["seq_id"] for e in events]
    assert seqs == sorted(set(seqs)), f"duplicated or out of order: {seqs}"
    assert [e["message_type"] for e in events] == ["assistant_message", "stop_reason", "usage_statistics"]

    for agent in (told, streamed):
        runs = await _runs_of(chaos, agent.id)
        assert len(runs) == 1, [r.id for r in runs]  # the message was sent once
        assert_intact(await load(chaos.db, runs[0].id), ["user", "assistant"])


async def test_a_wait_longer_than_the_grace_is_a_503_naming_the_run(chaos: Chaos, api: ApiProcess) -> None:
    agent = await chaos.create_agent(memory_blocks=[])
    chaos.fake.set_default(Reply.text("Tea it is.", delay=SLOW_S))
    api.env["MNEMO_DB_OUTAGE_GRACE_S"] = "1"
    await asyncio.to_thread(api.start)
    async with httpx.AsyncClient(base_url=api.base_url, timeout=WAIT_S) as http:
        sent = asyncio.create_task(http.post(f"/v1/agents/{agent.id}/messages", json={"input": "tea?"}))
        await chaos.chat_requests_reach(1)
        await asyncio.to_thread(chaos.pg.stop)
        response = await asyncio.wait_for(sent, WAIT_S)
        await asyncio.to_thread(chaos.pg.start)

    assert response.status_code == 503, response.text
    assert response.headers["x-should-retry"] == "false"  # sending again would start a second run
    detail = response.json()["detail"]
    run_id = detail.split("Run ", 1)[1].split(" ", 1)[0]
    assert f"GET /v1/runs/{run_id}" in detail
    run = await chaos.wait_run(run_id)
    assert (run.status, run.stop_reason) == ("completed", "end_turn")
    assert [r.id for r in await _runs_of(chaos, agent.id)] == [run_id]
