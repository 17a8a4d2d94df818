"""`PATCH /v1/agents/{id}/reset-messages` through the official letta-client: the context keeps only the
system message, the transcript stays in recall, and a reset is refused while a run is queued or running
or a tool call waits for approval."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from letta_client import AsyncLetta, ConflictError, Letta, NotFoundError

from mnemo.fakellm import Reply
from tests.fixtures.api_server import ApiServer, create_agent
from tests.fixtures.mnemo import Mnemo, fake_llm_config


async def test_reset_keeps_the_system_message_and_the_recall(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await create_agent(client, mnemo, memory_blocks=[{"label": "human", "value": "?"}])
    mnemo.fake.script(Reply.text("one"), Reply.text("two"))
    await client.agents.messages.create(agent.id, input="first")
    await client.agents.messages.create(agent.id, input="second")
    before = await client.agents.retrieve(agent.id)
    assert len(before.message_ids or []) == 5

    assert await client.agents.messages.reset(agent.id) is None  # Letta answers 1.x clients with null
    after = await client.agents.retrieve(agent.id)
    assert after.message_ids == (before.message_ids or [])[:1]
    listed = [m async for m in client.agents.messages.list(agent.id, order="asc")]
    assert [m.message_type for m in listed].count("user_message") == 2  # still in recall memory

    mnemo.fake.script(Reply.text("fresh"))
    response = await client.agents.messages.create(agent.id, input="third")
    assert [m.content for m in response.messages] == ["fresh"]
    request = mnemo.fake.chat_requests[-1]
    assert [m["role"] for m in request["messages"]] == ["system", "user"]
    assert "third" in request["messages"][1]["content"]
    assert "4 previous messages between you and the user" in request["messages"][0]["content"]

    # A v1 agent has no default initial messages (as in Letta): the option resets all the same.
    await client.agents.messages.reset(agent.id, add_default_initial_messages=True)
    assert (await client.agents.retrieve(agent.id)).message_ids == (before.message_ids or [])[:1]
    with pytest.raises(NotFoundError):
        await client.agents.messages.reset("agent-00000000-0000-4000-8000-000000000000")


async def test_reset_with_default_initial_messages_reboots_a_memgpt_agent(
    api_server: ApiServer, mnemo: Mnemo
) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await create_agent(client, mnemo, agent_type="memgpt_agent", memory_blocks=[])
    created = agent.message_ids or []
    assert len(created) == 4  # system + Letta's boot sequence
    mnemo.fake.script(Reply.tool_call("send_message", {"message": "Hello."}))
    await client.agents.messages.create(agent.id, input="first")
    assert len((await client.agents.retrieve(agent.id)).message_ids or []) == 7

    await client.agents.messages.reset(agent.id, add_default_initial_messages=True)
    after = (await client.agents.retrieve(agent.id)).message_ids or []
    assert after[0] == created[0] and len(after) == 4
    assert not set(after[1:]) & set(created[1:])  # a fresh boot sequence, not the old one back

    mnemo.fake.script(Reply.tool_call("send_message", {"message": "Hello again."}))
    await client.agents.messages.create(agent.id, input="second")
    sent = mnemo.fake.chat_requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "assistant", "tool", "user", "user"]
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {
        "message": "More human than human is our motto."
    }
    assert sent[2]["tool_call_id"] == sent[1]["tool_calls"][0]["id"]
    assert json.loads(sent[3]["content"])["type"] == "login"
    assert "second" in sent[4]["content"]
    # 4 created + 3 of the first turn + 3 booted again = 10 stored, 4 in context before "second".
    assert "6 previous messages between you and the user" in sent[0]["content"]

    # Without the option, a memgpt agent keeps its system message only.
    await client.agents.messages.reset(agent.id)
    assert (await client.agents.retrieve(agent.id)).message_ids == created[:1]


async def test_reset_is_refused_while_a_run_is_in_progress(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = Letta(base_url=api_server.base_url, max_retries=0)
    agent = await asyncio.to_thread(
        client.agents.create, memory_blocks=[], llm_config=fake_llm_config(mnemo.fake)
    )
    mnemo.fake.script(Reply.text("slow", delay=1.5))
    run = await asyncio.to_thread(client.agents.messages.create_async, agent.id, input="take your time")
    for _ in range(200):
        if mnemo.fake.chat_requests:
            break
        await asyncio.sleep(0.02)
    with pytest.raises(ConflictError, match=run.id):
        await asyncio.to_thread(client.agents.messages.reset, agent.id)
    done = await mnemo.runs.wait(run.id, timeout=60)
    assert done.status == "completed"
    assert len((await mnemo.agent(agent.id)).message_ids) == 3  # the refused reset changed nothing

    await asyncio.to_thread(client.agents.messages.reset, agent.id)
    assert len((await mnemo.agent(agent.id)).message_ids) == 1


async def test_reset_answers_older_clients_with_the_agent(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await create_agent(client, mnemo, memory_blocks=[])
    async with httpx.AsyncClient(
        base_url=api_server.base_url, headers={"User-Agent": "letta-client/0.1.300"}
    ) as http:
        response = await http.patch(f"/v1/agents/{agent.id}/reset-messages", json={})
    assert response.status_code == 200
    assert response.json()["id"] == agent.id and len(response.json()["message_ids"]) == 1


async def test_reset_is_refused_while_a_tool_call_waits_for_approval(
    api_server: ApiServer, mnemo: Mnemo
) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await create_agent(client, mnemo, memory_blocks=[])
    await client.agents.tools.update_approval(
        "conversation_search", agent_id=agent.id, body_requires_approval=True
    )
    mnemo.fake.script(Reply.tool_call("conversation_search", {"query": "tea"}, id="call_search_1"))
    response = await client.agents.messages.create(agent.id, input="what did I say about tea?")
    assert response.stop_reason.stop_reason == "requires_approval"
    # Reset would drop the request from the context while it stays pending (and blocks every message).
    with pytest.raises(ConflictError, match="call_search_1"):
        await client.agents.messages.reset(agent.id)

    mnemo.fake.script(Reply.text("I will not search then."))
    denied = await client.agents.messages.create(
        agent.id,
        messages=[
            {
                "type": "approval",
                "approvals": [{"type": "approval", "tool_call_id": "call_search_1", "approve": False}],
            }
        ],
    )
    assert denied.stop_reason.stop_reason == "end_turn"
    await client.agents.messages.reset(agent.id)
    assert len((await client.agents.retrieve(agent.id)).message_ids or []) == 1


async def test_replacing_message_ids_is_refused_while_a_run_is_in_progress(
    api_server: ApiServer, mnemo: Mnemo
) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await create_agent(client, mnemo, memory_blocks=[])
    system_id = (agent.message_ids or [])[0]
    mnemo.fake.script(Reply.text("slow", delay=1.5))
    run = await client.agents.messages.create_async(agent.id, input="take your time")
    for _ in range(200):
        if mnemo.fake.chat_requests:
            break
        await asyncio.sleep(0.02)
    with pytest.raises(ConflictError, match=run.id):
        await client.agents.update(agent.id, message_ids=[system_id])
    done = await mnemo.runs.wait(run.id, timeout=60)
    assert done.status == "completed"
    assert len((await mnemo.agent(agent.id)).message_ids) == 3  # the refused update changed nothing


async def test_replacing_message_ids_keeps_a_pending_approval_request(
    api_server: ApiServer, mnemo: Mnemo
) -> None:
    """Dropping a waiting approval request from the context is refused (the agent workflow would still
    hold it, invisible to the API); a new context that keeps it is accepted."""
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await create_agent(client, mnemo, memory_blocks=[])
    await client.agents.tools.update_approval(
        "conversation_search", agent_id=agent.id, body_requires_approval=True
    )
    mnemo.fake.script(Reply.tool_call("conversation_search", {"query": "tea"}, id="call_search_2"))
    response = await client.agents.messages.create(agent.id, input="what did I say about tea?")
    assert response.stop_reason.stop_reason == "requires_approval"
    system_id, user_id, request_id = (await client.agents.retrieve(agent.id)).message_ids or []

    with pytest.raises(ConflictError, match="call_search_2"):
        await client.agents.update(agent.id, message_ids=[system_id, user_id])
    kept = await client.agents.update(agent.id, message_ids=[system_id, request_id])
    assert kept.message_ids == [system_id, request_id]
    state = await client.agents.retrieve(agent.id, include=["agent.pending_approval"])
    assert state.pending_approval is not None
    assert state.pending_approval.tool_call.tool_call_id == "call_search_2"
