"""`use_assistant_message` / `assistant_message_tool_name` for legacy (memgpt) agents, through the
official letta-client: `send_message` calls show as assistant messages by default, as tool calls when
the client asks, in responses, listings and a run's messages."""

from __future__ import annotations

from letta_client import AsyncLetta

from mnemo.fakellm import Reply
from tests.fixtures.api_server import ApiServer, create_agent
from tests.fixtures.mnemo import Mnemo


async def test_send_message_as_assistant_message_or_tool_call(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await create_agent(client, mnemo, agent_type="memgpt_v2_agent", memory_blocks=[])
    mnemo.fake.script(Reply.tool_call("send_message", {"message": "Hello!"}))
    default = await client.agents.messages.create(agent.id, input="hi")
    assert ("assistant_message", "Hello!") in [
        (m.message_type, getattr(m, "content", None)) for m in default.messages
    ]

    mnemo.fake.script(Reply.tool_call("send_message", {"message": "Hi again."}))
    raw = await client.agents.messages.create(agent.id, input="hi", use_assistant_message=False)
    calls = [m for m in raw.messages if m.message_type == "tool_call_message"]
    assert [c.tool_call.name for c in calls] == ["send_message"]
    assert "assistant_message" not in [m.message_type for m in raw.messages]
    run_messages = await client.runs.messages.list(raw.messages[0].run_id)
    assert "tool_call_message" in [m.message_type for m in run_messages.items]

    listed = await client.agents.messages.list(agent.id, use_assistant_message=False, order="asc")
    assert "assistant_message" not in [m.message_type for m in listed.items]
    listed_default = await client.agents.messages.list(agent.id, order="asc")
    assert [m.content for m in listed_default.items if m.message_type == "assistant_message"] == [
        "More human than human is our motto.",  # Letta's boot sequence, there since the agent was created
        "Hello!",
        "Hi again.",
    ]


async def test_streamed_send_message_follows_the_request(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await create_agent(client, mnemo, agent_type="memgpt_v2_agent", memory_blocks=[])
    mnemo.fake.script(Reply.tool_call("send_message", {"message": "Streamed."}))
    stream = await client.agents.messages.stream(agent.id, input="hi", use_assistant_message=False)
    types = [getattr(e, "message_type", None) async for e in stream]
    assert "tool_call_message" in types and "assistant_message" not in types
