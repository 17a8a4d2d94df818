"""`otid` de-duplication through the official letta-client: a retried send (same input otid) starts no
second run and is answered with the first attempt's result, sync, async and streamed."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from letta_client import AsyncLetta, UnprocessableEntityError
from sqlmodel import col, select

from mnemo.fakellm import Reply
from mnemo.runtime.context import load_agent
from mnemo.runtime.runs import create_run
from mnemo.store.tables import MessageRow, RunRow
from tests.fixtures.api_server import ApiServer, create_agent
from tests.fixtures.mnemo import Mnemo


def _message(text: str, otid: str) -> list[Any]:
    return [{"role": "user", "content": text, "otid": otid}]


async def _runs(mnemo: Mnemo, agent_id: str) -> list[RunRow]:
    async with mnemo.db.session() as s:
        return list(
            (
                await s.exec(
                    select(RunRow).where(RunRow.agent_id == agent_id).order_by(col(RunRow.created_at))
                )
            ).all()
        )


async def _agent(client: AsyncLetta, mnemo: Mnemo) -> str:
    agent = await create_agent(client, mnemo, memory_blocks=[])
    return agent.id


async def test_a_retried_sync_send_gets_the_same_response(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent_id = await _agent(client, mnemo)
    otid = str(uuid.uuid4())
    mnemo.fake.script(Reply.text("only once"), Reply.text("a second run"))
    first = await client.agents.messages.create(agent_id, messages=_message("hi", otid))
    again = await client.agents.messages.create(agent_id, messages=_message("hi", otid))
    assert again.model_dump() == first.model_dump()
    assert [m.content for m in again.messages] == ["only once"]
    assert len(mnemo.fake.chat_requests) == 1 and len(await _runs(mnemo, agent_id)) == 1
    users = [m for m in await mnemo.messages(agent_id) if m.role == "user"]
    assert [m.otid for m in users] == [otid]

    # Another otid is another request; the same otid on another agent is that agent's own.
    fresh = await client.agents.messages.create(agent_id, messages=_message("hi", str(uuid.uuid4())))
    assert [m.content for m in fresh.messages] == ["a second run"]
    other = await _agent(client, mnemo)
    mnemo.fake.script(Reply.text("other agent"))
    elsewhere = await client.agents.messages.create(other, messages=_message("hi", otid))
    assert [m.content for m in elsewhere.messages] == ["other agent"]


async def test_a_retried_async_send_gets_the_same_run(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent_id = await _agent(client, mnemo)
    otid = str(uuid.uuid4())
    mnemo.fake.script(Reply.text("slow", delay=0.5), Reply.text("never"))
    # Two attempts at once (a client that retried before the first answered): one run between them.
    runs = await asyncio.gather(
        *(client.agents.messages.create_async(agent_id, messages=_message("go", otid)) for _ in range(3))
    )
    assert len({r.id for r in runs}) == 1
    done = await mnemo.runs.wait(runs[0].id, timeout=60)
    assert done.status == "completed"
    late = await client.agents.messages.create_async(agent_id, messages=_message("go", otid))
    assert (late.id, late.status) == (runs[0].id, "completed")
    assert len(await _runs(mnemo, agent_id)) == 1 and len(mnemo.fake.chat_requests) == 1


async def test_a_retried_stream_replays_the_first_run(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent_id = await _agent(client, mnemo)
    otid = str(uuid.uuid4())
    mnemo.fake.script(Reply.tool_call("conversation_search", {"query": "x"}), Reply.text("found it"))
    first = [c async for c in await client.agents.messages.stream(agent_id, messages=_message("look", otid))]
    again = [c async for c in await client.agents.messages.stream(agent_id, messages=_message("look", otid))]
    assert [c.model_dump() for c in again] == [c.model_dump() for c in first]
    assert [c.message_type for c in first][-3:] == ["assistant_message", "stop_reason", "usage_statistics"]
    assert len(await _runs(mnemo, agent_id)) == 1 and len(mnemo.fake.chat_requests) == 2


async def test_a_retry_after_a_failed_submission_hands_the_run_over(
    api_server: ApiServer, mnemo: Mnemo
) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent_id = await _agent(client, mnemo)
    otid = str(uuid.uuid4())
    # What RunService.send leaves when Temporal cannot be reached: the run and its input stored, the run
    # failed without ever starting (no usage). The client was answered with an error and retries.
    async with mnemo.db.transaction() as s:
        run = await create_run(s, await load_agent(s, agent_id), _message("are you there?", otid))
        run.status, run.stop_reason = "failed", "error"
        s.add(run)
    mnemo.fake.script(Reply.text("yes"))
    response = await client.agents.messages.create(agent_id, messages=_message("are you there?", otid))
    assert [m.content for m in response.messages] == [
        "yes"
    ] and response.stop_reason.stop_reason == "end_turn"
    assert [r.id for r in await _runs(mnemo, agent_id)] == [run.id]
    async with mnemo.db.session() as s:
        users = (
            await s.exec(select(MessageRow).where(MessageRow.agent_id == agent_id, MessageRow.role == "user"))
        ).all()
    assert len(users) == 1 and users[0].id in (await mnemo.agent(agent_id)).message_ids


async def test_repeated_otids_in_one_request_are_refused(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent_id = await _agent(client, mnemo)
    with pytest.raises(UnprocessableEntityError) as info:
        await client.agents.messages.create(agent_id, messages=_message("a", "same") + _message("b", "same"))
    assert "body.messages" in info.value.body["message"]  # type: ignore[index]
    assert await _runs(mnemo, agent_id) == []
