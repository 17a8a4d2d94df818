"""Human approval of tool calls through the official letta-client: approve, deny, client-side tools,
409 PENDING_APPROVAL, cancel denies. Real API server, worker, Temporal, Postgres and fake LLM."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest
from letta_client import AsyncLetta, ConflictError

from mnemo.fakellm import Reply
from mnemo.ids import new_id
from mnemo.runtime.tools import InProcessTool
from mnemo.store.tables import ToolRow
from tests.fixtures.api_server import ApiServer
from tests.fixtures.mnemo import Mnemo

TRANSFER = {
    "name": "transfer",
    "description": "Move money.",
    "parameters": {"type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"]},
}


async def _setup(api_server: ApiServer, mnemo: Mnemo) -> tuple[AsyncLetta, str, Counter[str]]:
    calls: Counter[str] = Counter()

    async def transfer(amount: int) -> str:
        calls["transfer"] += 1
        return f"moved {amount}"

    mnemo.extra_tools["transfer"] = InProcessTool("transfer", transfer)
    row = ToolRow(id=new_id("tool"), name="transfer", tool_type="custom", json_schema=TRANSFER)
    async with mnemo.db.transaction() as s:
        s.add(row)
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await client.agents.create(
        memory_blocks=[{"label": "human", "value": "?"}],
        tool_ids=[row.id],
        llm_config={"model": "fake", "model_endpoint_type": "openai", "model_endpoint": mnemo.fake.base_url},
    )
    state = await client.agents.tools.update_approval(
        "transfer", agent_id=agent.id, body_requires_approval=True
    )
    assert {"tool_name": "transfer", "type": "requires_approval"} in [
        r.model_dump(exclude_none=True) for r in state.tool_rules or []
    ]
    return client, agent.id, calls


async def _request_transfer(client: AsyncLetta, mnemo: Mnemo, agent_id: str) -> str:
    mnemo.fake.script(Reply.tool_call("transfer", {"amount": 5}, id="call_transfer_1"))
    response = await client.agents.messages.create(agent_id, input="send Bob 5")
    assert response.stop_reason.stop_reason == "requires_approval"
    request = response.messages[-1]
    assert request.message_type == "approval_request_message"
    assert request.tool_call.name == "transfer" and json.loads(request.tool_call.arguments) == {"amount": 5}
    return request.tool_call.tool_call_id


def _last_tool_message(request: dict[str, Any]) -> dict[str, Any]:
    return [m for m in request["messages"] if m["role"] == "tool"][-1]


async def test_approved_call_runs_once_and_the_agent_continues(api_server: ApiServer, mnemo: Mnemo) -> None:
    client, agent_id, calls = await _setup(api_server, mnemo)
    call_id = await _request_transfer(client, mnemo, agent_id)
    assert calls["transfer"] == 0  # nothing runs before a human says so
    state = await client.agents.retrieve(agent_id, include=["agent.pending_approval"])
    assert state.pending_approval is not None and state.pending_approval.tool_call.tool_call_id == call_id

    with pytest.raises(ConflictError) as conflict:
        await client.agents.messages.create(agent_id, input="hello?")
    detail = conflict.value.body["detail"]  # type: ignore[index]
    assert detail["code"] == "PENDING_APPROVAL" and detail["pending_request_id"].startswith("message-")

    mnemo.fake.script(Reply.text("Sent Bob 5."))
    response = await client.agents.messages.create(
        agent_id,
        messages=[
            {
                "type": "approval",
                "approvals": [{"type": "approval", "tool_call_id": call_id, "approve": True}],
            }
        ],
    )
    assert response.stop_reason.stop_reason == "end_turn"
    assert [m.message_type for m in response.messages] == ["tool_return_message", "assistant_message"]
    assert calls["transfer"] == 1
    assert (
        await client.agents.retrieve(agent_id, include=["agent.pending_approval"])
    ).pending_approval is None
    sent = _last_tool_message(mnemo.fake.chat_requests[-1])
    assert sent["tool_call_id"] == call_id and json.loads(sent["content"])["message"] == "moved 5"

    listed = await client.agents.messages.list(agent_id, order="asc")
    types = [m.message_type for m in listed.items]
    assert "approval_request_message" in types and "approval_response_message" in types
    # Answering again is refused: nothing is pending any more.
    with pytest.raises(ConflictError):
        await client.agents.messages.create(
            agent_id,
            messages=[{"type": "approval", "approvals": [{"tool_call_id": call_id, "approve": True}]}],
        )
    assert calls["transfer"] == 1


async def test_a_retried_answer_gets_the_first_response(api_server: ApiServer, mnemo: Mnemo) -> None:
    """A client that lost the response to its answer retries it with the same otid: it gets that
    answer's response, not a 409 because nothing is pending any more, and the tool ran once."""
    client, agent_id, calls = await _setup(api_server, mnemo)
    call_id = await _request_transfer(client, mnemo, agent_id)
    answer = {
        "type": "approval",
        "approvals": [{"type": "approval", "tool_call_id": call_id, "approve": True}],
        "otid": "answer-otid-1",
    }
    mnemo.fake.script(Reply.text("Sent Bob 5."))
    first = await client.agents.messages.create(agent_id, messages=[answer])
    again = await client.agents.messages.create(agent_id, messages=[answer])
    assert [m.id for m in again.messages] == [m.id for m in first.messages]
    assert first.messages[-1].content == "Sent Bob 5." and again.stop_reason.stop_reason == "end_turn"
    assert calls["transfer"] == 1


async def test_denied_call_tells_the_model_why(api_server: ApiServer, mnemo: Mnemo) -> None:
    client, agent_id, calls = await _setup(api_server, mnemo)
    call_id = await _request_transfer(client, mnemo, agent_id)
    mnemo.fake.script(Reply.text("OK, I won't."))
    response = await client.agents.messages.create(
        agent_id,
        messages=[
            {
                "type": "approval",
                "approvals": [{"tool_call_id": call_id, "approve": False, "reason": "not today"}],
            }
        ],
    )
    assert response.stop_reason.stop_reason == "end_turn" and calls["transfer"] == 0
    sent = json.loads(_last_tool_message(mnemo.fake.chat_requests[-1])["content"])
    assert sent["status"] == "Failed"
    assert sent["message"] == "Error: request to call tool denied. User reason: not today"


async def test_bad_approvals_are_422_and_lose_nothing(api_server: ApiServer, mnemo: Mnemo) -> None:
    import letta_client

    client, agent_id, calls = await _setup(api_server, mnemo)
    call_id = await _request_transfer(client, mnemo, agent_id)
    with pytest.raises(letta_client.UnprocessableEntityError, match="not waiting for approval"):
        await client.agents.messages.create(
            agent_id,
            messages=[{"type": "approval", "approvals": [{"tool_call_id": "call_nope", "approve": True}]}],
        )
    # Still pending, and still answerable.
    mnemo.fake.script(Reply.text("done"))
    response = await client.agents.messages.create(
        agent_id, messages=[{"type": "approval", "approvals": [{"tool_call_id": call_id, "approve": True}]}]
    )
    assert response.stop_reason.stop_reason == "end_turn" and calls["transfer"] == 1


async def test_client_side_tool_takes_the_clients_return(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await client.agents.create(
        memory_blocks=[],
        llm_config={"model": "fake", "model_endpoint_type": "openai", "model_endpoint": mnemo.fake.base_url},
    )
    where = {
        "name": "where_am_i",
        "description": "The user's city.",
        "parameters": {"type": "object", "properties": {}},
    }
    mnemo.fake.script(Reply.tool_call("where_am_i", {}, id="call_where"))
    response = await client.agents.messages.create(agent.id, input="where am I?", client_tools=[where])
    assert response.stop_reason.stop_reason == "requires_approval"
    assert "where_am_i" in [t["function"]["name"] for t in mnemo.fake.chat_requests[-1]["tools"]]
    mnemo.fake.script(Reply.text("You are in Paris."))
    response = await client.agents.messages.create(
        agent.id,
        messages=[
            {
                "type": "approval",
                "approvals": [
                    {
                        "type": "tool",
                        "tool_call_id": "call_where",
                        "tool_return": "Paris",
                        "status": "success",
                    }
                ],
            }
        ],
    )
    assert response.stop_reason.stop_reason == "end_turn"
    sent = json.loads(_last_tool_message(mnemo.fake.chat_requests[-1])["content"])
    assert (sent["status"], sent["message"]) == ("OK", "Paris")


async def test_cancel_denies_the_pending_call(api_server: ApiServer, mnemo: Mnemo) -> None:
    client, agent_id, calls = await _setup(api_server, mnemo)
    await _request_transfer(client, mnemo, agent_id)
    await client.agents.messages.cancel(agent_id)
    for _ in range(100):  # the agent workflow writes the denial when it gets the cancel
        listed = await client.agents.messages.list(agent_id, order="asc")
        returns = [m for m in listed.items if m.message_type == "tool_return_message"]
        if returns:
            break
        await asyncio.sleep(0.1)
    assert returns and returns[-1].status == "error"
    assert "The user cancelled the request, so the tool call was denied." in returns[-1].tool_return
    mnemo.fake.script(Reply.text("Hi again."))
    response = await client.agents.messages.create(agent_id, input="hello?")  # no longer 409
    assert response.stop_reason.stop_reason == "end_turn" and calls["transfer"] == 0


async def test_streamed_request_ends_with_the_approval_request(api_server: ApiServer, mnemo: Mnemo) -> None:
    client, agent_id, calls = await _setup(api_server, mnemo)
    mnemo.fake.script(Reply.tool_call("transfer", {"amount": 7}, id="call_stream"))
    stream = await client.agents.messages.stream(agent_id, input="send 7")
    events = [event async for event in stream]
    types = [getattr(e, "message_type", None) for e in events]
    assert "approval_request_message" in types
    stop = next(e for e in events if getattr(e, "message_type", None) == "stop_reason")
    assert stop.stop_reason == "requires_approval" and calls["transfer"] == 0
