"""`PATCH /v1/agents/{id}` and `POST /v1/agents/{id}/recompile` through the official letta-client: every
change is stored, and a change to the system prompt, tools, blocks or tool rules is in the very next
request the model receives."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import sqlalchemy as sa
from letta_client import APIStatusError, AsyncLetta, Letta, NotFoundError, UnprocessableEntityError
from sqlmodel import col

from mnemo.fakellm import Reply
from mnemo.store.tables import BlockRow
from tests.fixtures.api_server import ApiServer, create_agent
from tests.fixtures.mnemo import Mnemo, fake_llm_config

ROLL = '''
def roll(sides: int) -> str:
    """Roll a die.

    Args:
        sides: How many faces the die has.
    """
    return "4"
'''
MISSING_TOOL = "tool-00000000-0000-4000-8000-000000000000"
MISSING_BLOCK = "block-00000000-0000-4000-8000-000000000000"
MISSING_MESSAGE = "message-00000000-0000-4000-8000-000000000000"


def _client(api_server: ApiServer) -> AsyncLetta:
    return AsyncLetta(base_url=api_server.base_url, max_retries=0)


async def _next_request(client: AsyncLetta, mnemo: Mnemo, agent_id: str) -> dict[str, Any]:
    """What the model received on the agent's next turn."""
    mnemo.fake.script(Reply.text("ok"))
    await client.agents.messages.create(agent_id, input="hello")
    request: dict[str, Any] = mnemo.fake.chat_requests[-1]
    return request


def _tool_names(request: dict[str, Any]) -> list[str]:
    return sorted(t["function"]["name"] for t in request.get("tools") or [])


async def test_update_is_stored_and_in_the_next_prompt(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    agent = await create_agent(
        client,
        mnemo,
        name="before",
        memory_blocks=[{"label": "human", "value": "Name: Ada"}, {"label": "persona", "value": "I am Sam."}],
    )
    human = next(b for b in agent.blocks if b.label == "human")
    before = await _next_request(client, mnemo, agent.id)
    assert "I am Sam." in before["messages"][0]["content"]
    assert _tool_names(before) == ["conversation_search", "memory_insert", "memory_replace"]

    tool = await client.tools.create(source_code=ROLL)
    notes = await client.blocks.create(label="notes", value="Shared notes: likes green tea.")
    updated = await client.agents.update(
        agent.id,
        name="after",
        description="A terse helper.",
        system="You are Zed, a terse assistant.",
        tags=["terse", "test"],
        metadata={"team": "blue"},
        tool_ids=[tool.id],
        block_ids=[human.id, notes.id],
        tool_rules=[{"type": "exit_loop", "tool_name": "roll"}],
        secrets={"API_TOKEN": "t0k"},
        timezone="Europe/Paris",
        context_window_limit=64000,
        last_stop_reason="end_turn",
    )
    assert (updated.name, updated.description, updated.system) == (
        "after",
        "A terse helper.",
        "You are Zed, a terse assistant.",
    )
    assert updated.tags == ["terse", "test"] and updated.metadata == {"team": "blue"}
    assert [t.name for t in updated.tools] == ["roll"]
    assert sorted(b.label for b in updated.blocks) == ["human", "notes"]
    assert [(r.type, r.tool_name) for r in updated.tool_rules or []] == [("exit_loop", "roll")]
    assert [(s.key, s.value) for s in updated.secrets or []] == [("API_TOKEN", "t0k")]
    assert updated.timezone == "Europe/Paris" and updated.llm_config.context_window == 64000
    assert updated.last_stop_reason == "end_turn"
    fetched = await client.agents.retrieve(agent.id, include=["agent.blocks", "agent.tools"])
    assert fetched.name == "after" and [t.name for t in fetched.tools] == ["roll"]

    after = await _next_request(client, mnemo, agent.id)
    system = after["messages"][0]["content"]
    assert system.startswith("You are Zed, a terse assistant.")
    assert "Shared notes: likes green tea." in system and "Name: Ada" in system
    assert "I am Sam." not in system  # the persona block was detached
    assert "roll ends your response (yields control) when called" in system
    assert _tool_names(after) == ["roll"]
    # The blocks that were replaced were only detached: the global block list still has them.
    assert "persona" in {b.label async for b in client.blocks.list()}


async def test_model_and_message_window_updates(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    agent = await create_agent(client, mnemo, memory_blocks=[])
    mnemo.fake.script(Reply.text("one"))
    await client.agents.messages.create(agent.id, input="first")
    state = await client.agents.retrieve(agent.id)
    assert len(state.message_ids or []) == 3  # system, user, assistant

    # A new llm_config (here: the same fake under another model name) is what the next step calls.
    renamed = fake_llm_config(mnemo.fake, model="fake-2", temperature=0.1)
    updated = await client.agents.update(
        agent.id, llm_config=renamed, model_settings={"max_output_tokens": 77}
    )
    assert updated.llm_config.model == "fake-2" and updated.llm_config.max_tokens == 77
    assert updated.model == "openai/fake-2"
    request = await _next_request(client, mnemo, agent.id)
    assert request["model"] == "fake-2" and request["temperature"] == 0.1 and request["max_tokens"] == 77

    # The in-context window can be cut back to its system message: the model no longer sees the turns.
    system_id = (state.message_ids or [])[0]
    trimmed = await client.agents.update(agent.id, message_ids=[system_id])
    assert trimmed.message_ids == [system_id]
    request = await _next_request(client, mnemo, agent.id)
    assert [m["role"] for m in request["messages"]] == ["system", "user"]
    assert "previous messages between you and the user" in request["messages"][0]["content"]


async def test_update_with_the_sync_client(api_server: ApiServer, mnemo: Mnemo) -> None:
    await asyncio.to_thread(_sync_update, api_server, mnemo)


def _sync_update(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = Letta(base_url=api_server.base_url, max_retries=0)
    agent = client.agents.create(
        memory_blocks=[{"label": "human", "value": "?"}], llm_config=fake_llm_config(mnemo.fake)
    )
    updated = client.agents.update(agent.id, name="renamed", tags=["a"], description="d")
    assert (updated.name, updated.tags, updated.description) == ("renamed", ["a"], "d")
    # A null leaves a field as it was (Letta applies exclude_none).
    again = client.agents.update(agent.id, description=None, tags=["b"])
    assert (again.description, again.tags, again.name) == ("d", ["b"], "renamed")


async def test_update_errors_name_the_field(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    agent = await create_agent(client, mnemo, memory_blocks=[{"label": "human", "value": "?"}])
    with pytest.raises(NotFoundError, match="Agent agent-00000000"):
        await client.agents.update("agent-00000000-0000-4000-8000-000000000000", name="x")
    with pytest.raises(NotFoundError, match=MISSING_TOOL):
        await client.agents.update(agent.id, tool_ids=[MISSING_TOOL])
    with pytest.raises(NotFoundError, match=MISSING_BLOCK):
        await client.agents.update(agent.id, block_ids=[MISSING_BLOCK])
    with pytest.raises(NotFoundError, match=MISSING_MESSAGE):
        await client.agents.update(agent.id, message_ids=[MISSING_MESSAGE])
    bad: list[tuple[dict[str, Any], str]] = [
        ({"name": "no/slashes"}, "body.name"),
        ({"model": "no-provider"}, "body.model"),
        ({"model": "nosuchprovider/x"}, "body.model"),
        ({"llm_config": {"model": "x"}}, "body.llm_config"),
        ({"model_settings": {"temperature": "hot"}}, "body.model_settings"),
        ({"embedding": "nosuchprovider/x"}, "body.embedding"),
        ({"timezone": "Mars/Olympus"}, "body.timezone"),
        ({"tool_rules": [{"type": "no_such_rule", "tool_name": "x"}]}, "body.tool_rules"),
        ({"tool_rules": [{"type": "constrain_child_tools", "tool_name": "x"}]}, "body.tool_rules"),
        ({"tool_ids": ["a", "a"]}, "body.tool_ids"),
        ({"message_ids": []}, "body.message_ids"),
    ]
    for body, field in bad:
        with pytest.raises(UnprocessableEntityError) as info:
            await client.agents.update(agent.id, extra_body=body)
        assert field in info.value.body["message"], (body, info.value.body)  # type: ignore[index]
    first = await client.blocks.create(label="dup", value="1")
    second = await client.blocks.create(label="dup", value="2")
    with pytest.raises(UnprocessableEntityError, match="both labelled 'dup'"):
        await client.agents.update(agent.id, block_ids=[first.id, second.id])
    with pytest.raises(APIStatusError) as unsupported:
        await client.agents.update(agent.id, identity_ids=["identity-1"])
    assert unsupported.value.status_code == 501 and "identities" in str(unsupported.value)
    # None of the refused updates changed anything.
    unchanged = await client.agents.retrieve(agent.id, include=["agent.blocks", "agent.tools"])
    assert [b.label for b in unchanged.blocks] == ["human"] and len(unchanged.tools) == 3


async def test_recompile_returns_the_prompt_and_dry_run_stores_nothing(
    api_server: ApiServer, mnemo: Mnemo
) -> None:
    client = _client(api_server)
    agent = await create_agent(client, mnemo, memory_blocks=[{"label": "human", "value": "Colour: teal"}])
    stored = (await mnemo.context_texts(agent.id))[0][1]
    # Letta's route answers with the prompt as a JSON string; the client returns the body's text.
    same = json.loads(await client.agents.recompile(agent.id))
    assert same == stored  # update_timestamp=false (the default) keeps the prompt's timestamp

    # A block changed behind the API's back (as a data migration might) shows after a recompile.
    async with mnemo.db.transaction() as s:
        await s.execute(
            sa.update(BlockRow).where(col(BlockRow.id) == agent.blocks[0].id).values(value="Colour: plum")
        )
    preview = json.loads(await client.agents.recompile(agent.id, dry_run=True))
    assert "Colour: plum" in preview and "Colour: teal" in (await mnemo.context_texts(agent.id))[0][1]
    compiled = json.loads(await client.agents.recompile(agent.id, update_timestamp=True))
    assert "Colour: plum" in compiled and (await mnemo.context_texts(agent.id))[0][1] == compiled
    assert (await _next_request(client, mnemo, agent.id))["messages"][0]["content"] == compiled
    with pytest.raises(NotFoundError):
        await client.agents.recompile("agent-00000000-0000-4000-8000-000000000000")


async def test_features_not_built_yet_are_501_not_silence(api_server: ApiServer, mnemo: Mnemo) -> None:
    """Sleep-time agents, multi-agent tools, folders and identities are not built: asking for them at
    create or update says so (and creates nothing), where silently ignoring them would look like success."""
    client = _client(api_server)
    before = len([a async for a in client.agents.list()])
    asks: list[tuple[dict[str, Any], str]] = [
        ({"enable_sleeptime": True}, "sleep-time agents"),
        ({"include_multi_agent_tools": True}, "multi-agent tools"),
        ({"folder_ids": ["folder-1"]}, "folders"),
        ({"identity_ids": ["identity-1"]}, "identities"),
    ]
    for body, what in asks:
        with pytest.raises(APIStatusError) as refused:
            await create_agent(client, mnemo, memory_blocks=[], extra_body=body)
        assert refused.value.status_code == 501 and what in str(refused.value), body
    assert len([a async for a in client.agents.list()]) == before

    agent = await create_agent(client, mnemo, memory_blocks=[], enable_sleeptime=False, folder_ids=[])
    with pytest.raises(APIStatusError) as refused:
        await client.agents.update(agent.id, enable_sleeptime=True)
    assert refused.value.status_code == 501 and "sleep-time agents" in str(refused.value)
    assert (await client.agents.update(agent.id, enable_sleeptime=False)).enable_sleeptime is False


async def test_create_applies_model_settings_like_update(api_server: ApiServer, mnemo: Mnemo) -> None:
    """model_settings and the body's own model fields at create reach the model's requests (they were
    dropped before), and a bad value is a 422 naming it."""
    client = _client(api_server)
    agent = await create_agent(
        client,
        mnemo,
        memory_blocks=[],
        model_settings={"provider_type": "openai", "temperature": 0.3, "max_output_tokens": 55},
        parallel_tool_calls=False,
    )
    assert agent.llm_config.temperature == 0.3 and agent.llm_config.max_tokens == 55
    request = await _next_request(client, mnemo, agent.id)
    assert request["temperature"] == 0.3 and request["max_tokens"] == 55

    capped = await create_agent(client, mnemo, memory_blocks=[], max_tokens=21)
    assert capped.llm_config.max_tokens == 21
    with pytest.raises(UnprocessableEntityError, match="temperature"):
        await create_agent(client, mnemo, memory_blocks=[], model_settings={"temperature": "hot"})
