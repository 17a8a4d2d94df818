"""An agent's initial message sequence, through the official letta-client: legacy (heartbeat) agents boot
with Letta's "More human than human" sequence, v1 agents with nothing, and a sequence the client gives
replaces both. Checked as the client lists them and as the model receives them."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from letta_client import AsyncLetta, UnprocessableEntityError

from mnemo.fakellm import Reply
from tests.fixtures.api_server import ApiServer, create_agent
from tests.fixtures.mnemo import Mnemo

BOOT_THOUGHT = "Bootup sequence complete. Persona activated. Testing messaging functionality."
BOOT_MESSAGE = "More human than human is our motto."
# Letta's local time format, in the agent's timezone (New York: EST or EDT depending on the date).
NEW_YORK_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [AP]M (EST-0500|EDT-0400)$")
UTC_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [AP]M UTC\+0000$")


async def _listed(client: AsyncLetta, agent_id: str) -> list[Any]:
    return [m async for m in client.agents.messages.list(agent_id, order="asc")]


def _first_request_messages(mnemo: Mnemo) -> list[dict[str, Any]]:
    assert len(mnemo.fake.chat_requests) >= 1
    return list(mnemo.fake.chat_requests[0]["messages"])


async def test_a_memgpt_agent_boots_with_letta_s_default_sequence(
    api_server: ApiServer, mnemo: Mnemo
) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await create_agent(
        client, mnemo, agent_type="memgpt_agent", memory_blocks=[], timezone="America/New_York"
    )
    assert len(agent.message_ids or []) == 4

    listed = [m for m in await _listed(client, agent.id) if m.message_type != "system_message"]
    assert [m.message_type for m in listed] == [
        "reasoning_message",
        "assistant_message",
        "tool_return_message",
        "user_message",
    ]
    thought, said, returned, login = listed
    assert thought.reasoning == BOOT_THOUGHT
    assert said.content == BOOT_MESSAGE
    assert thought.id == said.id and thought.run_id is None and thought.step_id is None
    assert returned.status == "success"
    ret = json.loads(returned.tool_return)
    assert (ret["status"], ret["message"]) == ("OK", None)
    assert NEW_YORK_TIME.match(ret["time"])
    event = json.loads(login.content)
    assert (event["type"], event["last_login"]) == ("login", "Never (first login)")
    assert NEW_YORK_TIME.match(event["time"])

    mnemo.fake.script(Reply.tool_call("send_message", {"message": "Hello there."}))
    response = await client.agents.messages.create(agent.id, input="hi")
    assert [m.content for m in response.messages if m.message_type == "assistant_message"] == ["Hello there."]

    sent = _first_request_messages(mnemo)
    assert [m["role"] for m in sent] == ["system", "assistant", "tool", "user", "user"]
    assert "0 previous messages between you and the user" in sent[0]["content"]
    assert sent[1]["content"] == BOOT_THOUGHT
    [call] = sent[1]["tool_calls"]
    assert call["function"]["name"] == "send_message"
    # Letta's json_dumps (indent 2) of the arguments, byte for byte.
    assert call["function"]["arguments"] == '{\n  "message": "More human than human is our motto."\n}'
    assert sent[2]["tool_call_id"] == call["id"]
    assert json.loads(sent[2]["content"]) == ret
    assert json.loads(sent[3]["content"]) == event
    assert "hi" in sent[4]["content"]


async def test_a_v1_agent_starts_with_its_system_message_only(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await create_agent(client, mnemo, memory_blocks=[])
    assert len(agent.message_ids or []) == 1
    assert [
        m.message_type for m in await _listed(client, agent.id) if m.message_type != "system_message"
    ] == []

    mnemo.fake.script(Reply.text("Hello."))
    await client.agents.messages.create(agent.id, input="hi")
    assert [m["role"] for m in _first_request_messages(mnemo)] == ["system", "user"]


async def test_a_given_sequence_replaces_the_boot_sequence_of_a_memgpt_agent(
    api_server: ApiServer, mnemo: Mnemo
) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await create_agent(
        client,
        mnemo,
        agent_type="memgpt_v2_agent",
        memory_blocks=[],
        initial_message_sequence=[
            {"role": "user", "content": "My name is Ada.", "otid": "ignored-otid"},
            {"role": "assistant", "content": "Nice to meet you, Ada."},
        ],
    )
    assert len(agent.message_ids or []) == 4  # system, user, send_message call, its return

    listed = [m for m in await _listed(client, agent.id) if m.message_type != "system_message"]
    assert [(m.message_type, getattr(m, "content", None)) for m in listed[:2]] == [
        ("user_message", "My name is Ada."),
        ("assistant_message", "Nice to meet you, Ada."),
    ]
    assert [m.message_type for m in listed[2:]] == ["tool_return_message"]

    mnemo.fake.script(Reply.tool_call("send_message", {"message": "Hi Ada."}))
    await client.agents.messages.create(agent.id, input="do you remember me?")
    sent = _first_request_messages(mnemo)
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "user"]
    assert sent[1]["content"] == "My name is Ada."
    assert sent[2].get("content") is None  # no inner thoughts: Letta's initial assistant message has none
    [call] = sent[2]["tool_calls"]
    assert call["function"]["name"] == "send_message"
    assert json.loads(call["function"]["arguments"]) == {"message": "Nice to meet you, Ada."}
    assert sent[3]["tool_call_id"] == call["id"]
    returned = json.loads(sent[3]["content"])
    assert (returned["status"], returned["message"]) == ("OK", "None")
    assert UTC_TIME.match(returned["time"])
    assert "do you remember me?" in sent[4]["content"]


async def test_a_given_sequence_for_a_v1_agent(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await create_agent(
        client,
        mnemo,
        memory_blocks=[],
        initial_message_sequence=[
            {"role": "system", "content": "The user prefers short answers."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "My name "}, {"type": "text", "text": "is Ada."}],
            },
            {"role": "assistant", "content": "Nice to meet you, Ada."},
        ],
    )
    assert len(agent.message_ids or []) == 4

    listed = await _listed(client, agent.id)
    assert [m.message_type for m in listed] == [
        "system_message",
        "system_message",
        "user_message",
        "assistant_message",
    ]
    assert [m.content for m in listed[2:]] == ["My name is Ada.", "Nice to meet you, Ada."]

    mnemo.fake.script(Reply.text("Hi Ada."))
    await client.agents.messages.create(agent.id, input="hello again")
    sent = _first_request_messages(mnemo)
    assert [m["role"] for m in sent] == ["system", "system", "user", "assistant", "user"]
    alert = json.loads(sent[1]["content"])  # Letta's package_system_message
    assert (alert["type"], alert["message"]) == ("system_alert", "The user prefers short answers.")
    assert UTC_TIME.match(alert["time"])
    assert sent[2]["content"] == "My name is Ada."
    assert sent[3] == {"role": "assistant", "content": "Nice to meet you, Ada."}
    assert "hello again" in sent[4]["content"]

    # The context breakdown does not take the initial system_alert for a compaction summary.
    async with httpx.AsyncClient(base_url=api_server.base_url) as http:
        breakdown = (await http.get(f"/v1/agents/{agent.id}/context")).json()
    assert breakdown["summary_memory"] is None and breakdown["num_tokens_summary_memory"] == 0


@pytest.mark.parametrize(
    ("item", "field", "says"),
    [
        ({"role": "tool", "content": "hi"}, "role", "role 'tool' cannot start"),
        ({"role": "user"}, "content", "Field required"),
        ({"role": "user", "content": [{"type": "image", "url": "x"}]}, "content", "only text parts"),
    ],
)
async def test_a_bad_item_is_a_422_naming_its_field_and_creates_nothing(
    api_server: ApiServer, mnemo: Mnemo, item: dict[str, Any], field: str, says: str
) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    name = f"bad-initial-{field}-{len(says)}"
    with pytest.raises(UnprocessableEntityError) as raised:
        await create_agent(
            client,
            mnemo,
            name=name,
            agent_type="memgpt_agent",
            memory_blocks=[],
            initial_message_sequence=[{"role": "user", "content": "fine"}, item],
        )
    body = raised.value.body
    assert isinstance(body, dict)
    [error] = body["detail"]
    assert error["loc"][:4] == ["body", "initial_message_sequence", 1, field]
    assert says in error["msg"]
    assert [a async for a in client.agents.list(name=name)] == []
