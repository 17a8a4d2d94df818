"""`include_return_message_types` through the official letta-client: sync responses, step streams, token
streams (deltas included), streams resumed later from the run, and message listings return only the
asked-for types; a stream still ends with stop_reason and usage_statistics."""

from __future__ import annotations

from letta_client import AsyncLetta

from mnemo.fakellm import Reply
from tests.fixtures.api_server import ApiServer, create_agent
from tests.fixtures.mnemo import Mnemo

CLOSING = ["stop_reason", "usage_statistics"]
TEXT = "The answer arrives in several small pieces, token by token."


def _two_steps(mnemo: Mnemo) -> None:
    mnemo.fake.script(Reply.tool_call("conversation_search", {"query": "tea"}), Reply.text(TEXT))


async def test_sync_and_step_streamed_responses_are_filtered(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await create_agent(client, mnemo, memory_blocks=[])
    _two_steps(mnemo)
    response = await client.agents.messages.create(
        agent.id, input="q", include_return_message_types=["tool_return_message"]
    )
    assert [m.message_type for m in response.messages] == ["tool_return_message"]

    _two_steps(mnemo)
    stream = await client.agents.messages.create(
        agent.id, input="q", streaming=True, include_return_message_types=["assistant_message"]
    )
    chunks = [c async for c in stream]
    assert [c.message_type for c in chunks] == ["assistant_message", *CLOSING]
    assert chunks[0].content == TEXT

    # A stream re-read later from the run is filtered as its request asked.
    run_id = chunks[0].run_id
    assert run_id is not None
    replayed = [c.message_type async for c in await client.runs.messages.stream(run_id, starting_after=0)]
    assert replayed == ["assistant_message", *CLOSING]


async def test_token_streams_filter_deltas_too(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await create_agent(client, mnemo, memory_blocks=[])
    _two_steps(mnemo)
    stream = await client.agents.messages.stream(
        agent.id, input="q", stream_tokens=True, include_return_message_types=["tool_return_message"]
    )
    assert [c.message_type async for c in stream] == ["tool_return_message", *CLOSING]

    _two_steps(mnemo)
    stream = await client.agents.messages.stream(
        agent.id, input="q", stream_tokens=True, include_return_message_types=["assistant_message"]
    )
    chunks = [c async for c in stream]
    deltas = [c for c in chunks if c.message_type == "assistant_message"]
    assert len(deltas) > 1 and "".join(d.content for d in deltas) == TEXT
    assert {c.message_type for c in chunks} == {"assistant_message", *CLOSING}

    # Unfiltered, the same turn streams the tool call and its return as well.
    _two_steps(mnemo)
    stream = await client.agents.messages.stream(agent.id, input="q", stream_tokens=True)
    kinds = {c.message_type async for c in stream}
    assert kinds == {"tool_call_message", "tool_return_message", "assistant_message", *CLOSING}


async def test_listing_messages_is_filtered(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await create_agent(client, mnemo, memory_blocks=[])
    _two_steps(mnemo)
    await client.agents.messages.create(agent.id, input="q")
    everything = [m.message_type async for m in client.agents.messages.list(agent.id, order="asc")]
    assert everything == [
        "system_message",
        "user_message",
        "tool_call_message",
        "tool_return_message",
        "assistant_message",
    ]
    only = client.agents.messages.list(
        agent.id, order="asc", include_return_message_types=["user_message", "assistant_message"]
    )
    assert [m.message_type async for m in only] == ["user_message", "assistant_message"]
