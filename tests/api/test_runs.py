"""Runs through the official letta-client: list by agent and status, retrieve, messages, steps, usage,
and resuming a failed run (a Mnemo addition)."""

from __future__ import annotations

import pytest
from letta_client import AsyncLetta, ConflictError, NotFoundError, UnprocessableEntityError
from letta_client.types.agents import Run

from mnemo.fakellm import Fault, Reply
from tests.fixtures.api_server import ApiServer
from tests.fixtures.mnemo import Mnemo


async def _agent(client: AsyncLetta, mnemo: Mnemo, name: str) -> str:
    agent = await client.agents.create(
        name=name,
        memory_blocks=[{"label": "human", "value": "Name: ?"}],
        llm_config={"model": "fake", "model_endpoint_type": "openai", "model_endpoint": mnemo.fake.base_url},
    )
    return agent.id


async def _send(client: AsyncLetta, agent_id: str, text: str) -> str:
    response = await client.agents.messages.create(agent_id, input=text)
    run_ids = {m.run_id for m in response.messages} | set(response.usage.run_ids or [])
    assert len(run_ids) == 1
    return run_ids.pop()  # type: ignore[return-value]


async def test_list_retrieve_messages_steps_usage(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    ada = await _agent(client, mnemo, "ada")
    bob = await _agent(client, mnemo, "bob")

    mnemo.fake.script(Reply.text("hello", usage=(100, 5)))
    first = await _send(client, ada, "hi")
    mnemo.fake.script(
        Reply.tool_call(
            "memory_replace", {"label": "human", "old_string": "?", "new_string": "Ada"}, usage=(200, 20)
        ),
        Reply.text("Noted, Ada.", usage=(260, 7)),
    )
    second = await _send(client, ada, "I'm Ada")
    mnemo.fake.script(Fault.status(400, "the model rejected the request"))
    failed = await _send(client, bob, "hello?")

    assert [r.id for r in (await client.runs.list(agent_id=ada)).items] == [second, first]  # newest first
    assert [r.id for r in (await client.runs.list(agent_id=ada, order="asc", limit=1)).items] == [first]
    assert [r.id for r in (await client.runs.list(agent_id=ada, order="asc", after=first)).items] == [second]
    assert [r.id async for r in client.runs.list(agent_id=ada, limit=1)] == [second, first]
    assert [r.id for r in (await client.runs.list(statuses=["failed"])).items] == [failed]
    assert [r.id for r in (await client.runs.list(statuses=["completed"], order="asc")).items] == [
        first,
        second,
    ]
    assert [r.id for r in (await client.runs.list(agent_id=ada, statuses=["failed"])).items] == []
    assert [r.id for r in (await client.runs.list(active=True)).items] == []
    assert [r.id for r in (await client.runs.list(stop_reason="llm_api_error")).items] == [failed]

    run = await client.runs.retrieve(second)
    assert (run.id, run.agent_id, run.status, run.stop_reason) == (second, ada, "completed", "end_turn")
    assert run.completed_at is not None and run.created_at is not None
    bad = await client.runs.retrieve(failed)
    assert (bad.status, bad.stop_reason) == ("failed", "llm_api_error")

    messages = [m async for m in client.runs.messages.list(second, limit=2)]  # pages through `after`
    assert [m.message_type for m in messages] == [
        "user_message",
        "tool_call_message",
        "tool_return_message",
        "assistant_message",
    ]
    assert messages[0].content == "I'm Ada" and messages[-1].content == "Noted, Ada."
    assert {m.run_id for m in messages} == {second}
    newest = await client.runs.messages.list(second, order="desc", limit=1)
    assert [m.message_type for m in newest.items] == ["assistant_message"]

    steps = await client.runs.steps.list(second, order="asc")
    assert [(s.run_id, s.agent_id, s.status) for s in steps.items] == [(second, ada, "success")] * 2
    assert [s.prompt_tokens for s in steps.items] == [200, 260]
    assert [s.id for s in (await client.runs.steps.list(second)).items] == [s.id for s in steps.items][::-1]

    usage = await client.runs.usage.retrieve(second)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (460, 27, 487)
    assert (await client.runs.usage.retrieve(first)).total_tokens == 105


async def test_resume_a_failed_run(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent_id = await _agent(client, mnemo, "cy")
    mnemo.fake.script(Fault.status(400, "the provider is misconfigured"))
    run_id = await _send(client, agent_id, "are you there?")
    assert (await client.runs.retrieve(run_id)).status == "failed"

    mnemo.fake.script(Reply.text("Back again."))
    resumed = await client.post(f"/v1/runs/{run_id}/resume", cast_to=Run)
    assert resumed.id == run_id and resumed.status in ("created", "running", "completed")
    await mnemo.runs.wait(run_id, timeout=60)  # the API returns once the run is queued

    run = await client.runs.retrieve(run_id)
    assert (run.status, run.stop_reason) == ("completed", "end_turn")
    texts = [
        m.content
        for m in (await client.runs.messages.list(run_id)).items
        if m.message_type == "assistant_message"
    ]
    assert texts == ["Back again."]
    user_messages = [
        m for m in (await client.runs.messages.list(run_id)).items if m.message_type == "user_message"
    ]
    assert len(user_messages) == 1  # the input was not added twice

    with pytest.raises(ConflictError, match="already completed"):
        await client.post(f"/v1/runs/{run_id}/resume", cast_to=Run)
    with pytest.raises(NotFoundError, match="run-00000000"):
        await client.post("/v1/runs/run-00000000-0000-4000-8000-000000000000/resume", cast_to=Run)


async def test_unknown_ids_and_bad_filters(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    missing = "run-00000000-0000-4000-8000-000000000000"
    for call in (
        client.runs.retrieve(missing),
        client.runs.messages.list(missing),
        client.runs.steps.list(missing),
        client.runs.usage.retrieve(missing),
    ):
        with pytest.raises(NotFoundError, match=missing):
            await call
    with pytest.raises(NotFoundError, match="agent-00000000"):
        await client.runs.list(agent_id="agent-00000000-0000-4000-8000-000000000000")
    with pytest.raises(UnprocessableEntityError, match="statuses"):
        await client.runs.list(statuses=["finished"])
    with pytest.raises(UnprocessableEntityError, match="limit"):
        await client.runs.list(limit=0)
