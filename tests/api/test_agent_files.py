"""Agent Files (`.af`) through the official letta-client: `agents.import_file` reads the real files
Letta users export, and `agents.export_file` writes documents that import back into the same agent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
from letta_client import APIStatusError, AsyncLetta, NotFoundError, UnprocessableEntityError

from mnemo.fakellm import Reply
from tests.fixtures.api_server import ApiServer, create_agent
from tests.fixtures.mnemo import Mnemo, fake_llm_config

FILES = Path(__file__).resolve().parents[1] / "fixtures" / "agent-files"
IMPORTABLE = ["customer_service", "memgpt_agent", "memgpt_agent_with_convo", "outreach_workflow_agent"]

GREET = '''
def greet(name: str) -> str:
    """Greet someone.

    Args:
        name: Who to greet.
    """
    return "hello " + name
'''


def _client(api_server: ApiServer) -> AsyncLetta:
    return AsyncLetta(base_url=api_server.base_url, max_retries=0)


def _raw(name: str) -> bytes:
    return (FILES / f"{name}.af").read_bytes()


def _doc(raw: bytes | str) -> dict[str, Any]:
    doc = json.loads(raw)
    return json.loads(doc) if isinstance(doc, str) else doc


async def _import(client: AsyncLetta, data: bytes | dict[str, Any], **options: Any) -> list[str]:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    response = await client.agents.import_file(file=("agent.af", body, "application/json"), **options)
    return list(response.agent_ids)


async def _agent_count(client: AsyncLetta) -> int:
    return len([a async for a in client.agents.list(limit=1000)])


async def _context(client: AsyncLetta, agent_id: str) -> list[tuple[str, str]]:
    """(message_type, text) of the agent's messages, oldest first."""
    out = []
    async for m in client.agents.messages.list(agent_id, order="asc", limit=1000):
        data = m.model_dump()
        text = data.get("content") or data.get("tool_return") or json.dumps(data.get("tool_call"))
        out.append((str(m.message_type), str(text)))
    return out


@pytest.mark.parametrize("name", IMPORTABLE)
async def test_a_real_agent_file_imports_and_talks(api_server: ApiServer, mnemo: Mnemo, name: str) -> None:
    client = _client(api_server)
    doc = _doc(_raw(name))
    spec = doc["agents"][0]
    [agent_id] = await _import(client, _raw(name))

    agent = await client.agents.retrieve(agent_id, include=["agent.blocks", "agent.tools"])
    # Letta's import default appends "_copy" to the name (append_copy_suffix=True).
    assert agent.name == f"{spec['name']}_copy" and agent.system == spec["system"]
    blocks = {b["id"]: b for b in doc["blocks"]}
    assert sorted((str(b.label), b.value) for b in agent.blocks) == sorted(
        (blocks[i]["label"], blocks[i]["value"]) for i in spec["block_ids"]
    )
    tools = {t["id"]: t["name"] for t in doc["tools"]}
    assert sorted(str(t.name) for t in agent.tools) == sorted(tools[i] for i in spec["tool_ids"])
    assert len(agent.message_ids or []) == len(spec["in_context_message_ids"])
    listed = await _context(client, agent_id)
    assert [t for t, _ in listed] == ["system_message"] * len(spec["messages"])
    assert [r.tool_name for r in agent.tool_rules or []] == [r["tool_name"] for r in spec["tool_rules"]]

    await client.agents.update(agent_id, llm_config=cast(Any, fake_llm_config(mnemo.fake)))
    mnemo.fake.script(Reply.text("hi there"))
    response = await client.agents.messages.create(agent_id, input="hello")
    assert [m.content for m in response.messages if m.message_type == "assistant_message"] == ["hi there"]
    request = mnemo.fake.chat_requests[-1]
    system = request["messages"][0]["content"]
    for block_id in spec["block_ids"]:
        assert blocks[block_id]["value"].strip() in system  # the imported memory is in the context
    # The file's tool rules hold: a run_first rule offers only its tool at the first step.
    first = {r["tool_name"] for r in spec["tool_rules"] if r["type"] == "run_first"}
    offered = {t["function"]["name"] for t in request.get("tools", [])}
    assert offered == (first or {tools[i] for i in spec["tool_ids"]})
    assert "hello" in request["messages"][-1]["content"]


async def test_the_conversation_of_a_file_reaches_the_model(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    [agent_id] = await _import(client, _raw("memgpt_agent_with_convo"))
    await client.agents.update(agent_id, llm_config=cast(Any, fake_llm_config(mnemo.fake)))
    mnemo.fake.script(Reply.text("Hi Chad"))
    await client.agents.messages.create(agent_id, input="what do you know about me?")
    system = mnemo.fake.chat_requests[-1]["messages"][0]["content"]
    assert "First name: Chad" in system and "Formula 1" in system and "I am Sam." in system


async def test_a_custom_tool_of_a_file_runs(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    [agent_id] = await _import(client, _raw("customer_service"))
    result = await client.agents.tools.run("terminate_chat", agent_id=agent_id, args={"reason": "rude"})
    assert result.status == "success" and result.func_return == "ERROR"
    status = await client.agents.tools.run("check_order_status", agent_id=agent_id, args={"order_number": 7})
    assert status.func_return == "Order 7 is currently processing."


async def test_a_letta_builtin_we_lack_is_named_and_nothing_is_created(
    api_server: ApiServer, mnemo: Mnemo
) -> None:
    client = _client(api_server)
    before = await _agent_count(client)
    with pytest.raises(APIStatusError, match="web_search") as refused:
        await _import(client, _raw("deep_research_agent"))
    assert refused.value.status_code == 501
    assert await _agent_count(client) == before
    names = [t.name async for t in client.tools.list(limit=1000)]
    assert "create_research_plan" not in names  # the custom tools went with the rollback


async def test_export_import_round_trip(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    tool = await client.tools.create(source_code=GREET)
    agent = await create_agent(
        client,
        mnemo,
        name="round trip",
        memory_blocks=[
            {"label": "human", "value": "Name: Ada", "limit": 5000},
            {"label": "persona", "value": "I am a careful bot."},
        ],
        tool_ids=[tool.id],
        secrets={"API_TOKEN": "s3cret"},
        tags=["a", "b"],
    )
    mnemo.fake.script(Reply.tool_call("greet", {"name": "Ada"}), Reply.text("Said hello."))
    await client.agents.messages.create(agent.id, input="greet me")
    original = await client.agents.retrieve(agent.id, include=["agent.blocks", "agent.tools"])

    exported = await client.agents.export_file(agent.id)
    assert isinstance(exported, str)
    doc = json.loads(exported)
    assert doc["metadata"]["revision_id"] and [a["id"] for a in doc["agents"]] == ["agent-0"]
    spec = doc["agents"][0]
    assert spec["tool_exec_environment_variables"] == {"API_TOKEN": ""}  # secret values never leave
    assert spec["include_base_tools"] is False and spec["include_base_tool_rules"] is False
    assert spec["in_context_message_ids"] == [f"message-{i}" for i in range(len(original.message_ids or []))]
    assert sorted(spec["block_ids"]) == sorted(b["id"] for b in doc["blocks"])
    assert {t["name"]: t["source_code"] for t in doc["tools"]}["greet"] == GREET
    again = json.loads(await client.agents.export_file(agent.id))
    assert {**again, "created_at": None} == {**doc, "created_at": None}

    [copy_id] = await _import(client, exported.encode(), secrets=json.dumps({"API_TOKEN": "new"}))
    copy = await client.agents.retrieve(copy_id, include=["agent.blocks", "agent.tools", "agent.secrets"])
    assert copy.id != agent.id and copy.name == "round trip_copy" and sorted(copy.tags) == ["a", "b"]
    assert sorted((str(b.label), b.value, b.limit) for b in copy.blocks) == sorted(
        (str(b.label), b.value, b.limit) for b in original.blocks
    )
    assert sorted(str(t.name) for t in copy.tools) == sorted(str(t.name) for t in original.tools)
    assert {s.key: s.value for s in copy.secrets or []} == {"API_TOKEN": "new"}
    assert len(copy.message_ids or []) == len(original.message_ids or [])
    theirs, ours = await _context(client, copy_id), await _context(client, agent.id)
    assert theirs[1:] == ours[1:]  # the conversation, message for message
    assert theirs[0][0] == "system_message" and "Name: Ada" in theirs[0][1]

    # The copy carries on the conversation: the model sees the imported turn.
    mnemo.fake.script(Reply.text("Welcome back."))
    await client.agents.messages.create(copy_id, input="again")
    sent = mnemo.fake.chat_requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert sent[2]["tool_calls"][0]["function"]["name"] == "greet" and "hello Ada" in sent[3]["content"]


async def test_scrub_and_strip_messages(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    agent = await create_agent(client, mnemo, memory_blocks=[{"label": "human", "value": "Bo"}])
    mnemo.fake.script(Reply.text("ok"))
    await client.agents.messages.create(agent.id, input="remember me")

    scrubbed = json.loads(await client.agents.export_file(agent.id, scrub_messages=True))
    assert scrubbed["agents"][0]["messages"] == [] and scrubbed["agents"][0]["in_context_message_ids"] == []
    [from_scrubbed] = await _import(client, scrubbed)
    assert [t for t, _ in await _context(client, from_scrubbed)] == ["system_message"]

    full = await client.agents.export_file(agent.id)
    assert len(json.loads(full)["agents"][0]["messages"]) == 3
    [stripped] = await _import(client, full.encode(), strip_messages=True)
    assert [t for t, _ in await _context(client, stripped)] == ["system_message"]
    blocks = (await client.agents.retrieve(stripped, include=["agent.blocks"])).blocks
    assert [(b.label, b.value) for b in blocks] == [("human", "Bo")]


async def test_import_options(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    raw = _raw("customer_service")
    [named] = await _import(client, raw, name="support")
    assert (await client.agents.retrieve(named)).name == "support"
    [copied] = await _import(client, raw, append_copy_suffix=True)
    assert (await client.agents.retrieve(copied)).name == "customer_service_copy"
    [plain] = await _import(client, raw, append_copy_suffix=False)
    assert (await client.agents.retrieve(plain)).name == "customer_service"
    [legacy_name] = await _import(client, raw, override_name="older", env_vars_json='{"K": "v"}')
    legacy = await client.agents.retrieve(legacy_name, include=["agent.secrets"])
    assert legacy.name == "older" and {s.key: s.value for s in legacy.secrets or []} == {"K": "v"}

    # An existing tool of the same name keeps its source unless the import may override it.
    mine = 'def terminate_chat(reason: str) -> str:\n    """Mine.\n\n    Args:\n        reason: Why.\n    """\n    return \'kept\'\n'
    tool = await client.tools.upsert(source_code=mine)
    [kept] = await _import(client, raw, override_existing_tools=False)
    assert (await client.tools.retrieve(tool.id)).source_code == mine
    ran = await client.agents.tools.run("terminate_chat", agent_id=kept, args={"reason": "x"})
    assert ran.func_return == "kept"
    await _import(client, raw)  # Letta's default: the file's definition wins
    assert "dummy_message" in ((await client.tools.retrieve(tool.id)).source_code or "")

    with pytest.raises(UnprocessableEntityError, match="secrets"):
        await _import(client, raw, secrets="[1, 2]")


async def test_errors(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    before = await _agent_count(client)
    with pytest.raises(UnprocessableEntityError, match="not valid JSON"):
        await _import(client, b"{not json")
    with pytest.raises(UnprocessableEntityError, match="agents"):
        await _import(client, {"name": "a legacy single agent"})

    doc = _doc(_raw("memgpt_agent"))
    for key in ("groups", "mcp_servers"):
        bad = {**doc, key: [{"id": f"{key}-0"}]}
        with pytest.raises(APIStatusError, match=key) as raised:
            await _import(client, bad)
        assert raised.value.status_code == 501
    sleeptime = {**doc, "agents": [{**doc["agents"][0], "enable_sleeptime": True}]}
    with pytest.raises(APIStatusError, match="enable_sleeptime") as raised:
        await _import(client, sleeptime)
    assert raised.value.status_code == 501
    dangling = {**doc, "agents": [{**doc["agents"][0], "block_ids": ["block-9"]}]}
    with pytest.raises(UnprocessableEntityError, match="block-9"):
        await _import(client, dangling)
    assert await _agent_count(client) == before

    with pytest.raises(NotFoundError):
        await client.agents.export_file("agent-00000000-0000-4000-8000-000000000000")
    agent = await create_agent(client, mnemo, memory_blocks=[])
    with pytest.raises(APIStatusError) as raised:
        await client.agents.export_file(agent.id, use_legacy_format=True)
    assert raised.value.status_code == 501
    with pytest.raises(APIStatusError, match="conversation") as raised:
        await client.agents.export_file(agent.id, conversation_id="conv-1")
    assert raised.value.status_code == 501
