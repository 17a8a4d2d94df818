"""The official letta-client against Mnemo: create an agent, send messages, list them."""

from __future__ import annotations

import asyncio

from letta_client import AsyncLetta, Letta

from mnemo.fakellm import Reply
from tests.fixtures.api_server import ApiServer
from tests.fixtures.mnemo import Mnemo, fake_llm_config

# The worker runs on the test's event loop: tests are async, and the sync client runs in a thread.


async def test_create_agent_and_converse_sync_client(api_server: ApiServer, mnemo: Mnemo) -> None:
    await asyncio.to_thread(_converse, api_server, mnemo)


def _converse(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = Letta(base_url=api_server.base_url, max_retries=0)
    agent = client.agents.create(
        name="ada-helper",
        memory_blocks=[{"label": "persona", "value": "I am Sam."}, {"label": "human", "value": "Name: ?"}],
        llm_config=fake_llm_config(mnemo.fake),
    )
    assert agent.id.startswith("agent-") and agent.agent_type == "letta_v1_agent"
    assert {b.label for b in agent.blocks} == {"persona", "human"}
    assert {t.name for t in agent.tools} == {"conversation_search", "memory_replace", "memory_insert"}

    mnemo.fake.script(
        Reply.tool_call("memory_replace", {"label": "human", "old_string": "?", "new_string": "Ada"}),
        Reply.text("Hi Ada!"),
    )
    response = client.agents.messages.create(agent.id, messages=[{"role": "user", "content": "I'm Ada"}])
    assert response.stop_reason.stop_reason == "end_turn"
    types = [m.message_type for m in response.messages]
    assert types == ["tool_call_message", "tool_return_message", "assistant_message"]
    assert response.messages[-1].content == "Hi Ada!"
    assert response.usage.step_count == 2

    listed = client.agents.messages.list(agent.id, order="asc")
    assert [m.message_type for m in listed][:2] == ["system_message", "user_message"]
    fetched = client.agents.retrieve(agent.id, include=["agent.blocks"])
    assert {b.label: b.value for b in fetched.blocks}["human"] == "Name: Ada"


async def test_async_client_and_errors(api_server: ApiServer, mnemo: Mnemo) -> None:
    import httpx

    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await client.agents.create(
        memory_blocks=[{"label": "human", "value": "?"}],
        llm_config={"model": "fake", "model_endpoint_type": "openai", "model_endpoint": mnemo.fake.base_url},
    )
    mnemo.fake.script(Reply.text("pong"))
    response = await client.agents.messages.create(agent.id, input="ping")
    assert [m.content for m in response.messages] == ["pong"]
    async with httpx.AsyncClient(base_url=api_server.base_url) as http:
        r = await http.post(
            "/v1/agents/agent-00000000-0000-4000-8000-000000000000/messages", json={"input": "hi"}
        )
        assert r.status_code == 404 and "not found" in r.json()["detail"]
        r = await http.post("/v1/agents/", json={"name": "x", "model": "no-provider"})
        assert r.status_code == 422
