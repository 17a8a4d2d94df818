"""SSE through the official letta-client: step streaming, token streaming, async runs with callbacks,
re-attaching to any run's stream from a seq_id, and cancel."""

from __future__ import annotations

import asyncio
import json
from http.server import BaseHTTPRequestHandler, HTTPServer
from threading import Thread
from typing import Any

import httpx
from letta_client import AsyncLetta, Letta

from mnemo.fakellm import Reply
from tests.fixtures.api_server import ApiServer, create_agent
from tests.fixtures.mnemo import Mnemo, fake_llm_config


async def _agent(client: AsyncLetta, mnemo: Mnemo) -> Any:
    return await create_agent(client, mnemo, memory_blocks=[{"label": "human", "value": "Name: ?"}])


async def test_step_streaming_ends_with_stop_reason_usage_and_done(
    api_server: ApiServer, mnemo: Mnemo
) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await _agent(client, mnemo)
    mnemo.fake.script(
        Reply.tool_call("memory_replace", {"label": "human", "old_string": "?", "new_string": "Ada"}),
        Reply.text("Hi Ada!"),
    )
    stream = await client.agents.messages.create(agent.id, input="I'm Ada", streaming=True)
    chunks = [chunk async for chunk in stream]
    types = [c.message_type for c in chunks]
    assert types == [
        "tool_call_message",
        "tool_return_message",
        "assistant_message",
        "stop_reason",
        "usage_statistics",
    ]
    assert chunks[2].content == "Hi Ada!"
    assert chunks[3].stop_reason == "end_turn" and chunks[4].step_count == 2
    # The raw wire format is Letta's: data lines, closed by [DONE].
    mnemo.fake.script(Reply.text("again"))
    async with httpx.AsyncClient(base_url=api_server.base_url, timeout=30) as http:
        raw = (await http.post(f"/v1/agents/{agent.id}/messages/stream", json={"input": "x"})).text
    lines = [line for line in raw.split("\n") if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)
    assert json.loads(lines[0][6:])["message_type"] == "assistant_message"


async def test_token_streaming_sends_deltas(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await _agent(client, mnemo)
    text = "This reply arrives in several small pieces, token by token."
    mnemo.fake.script(Reply.text(text))
    stream = await client.agents.messages.stream(agent.id, input="hi", stream_tokens=True)
    chunks = [chunk async for chunk in stream]
    deltas = [c for c in chunks if c.message_type == "assistant_message"]
    assert len(deltas) > 1 and "".join(d.content for d in deltas) == text
    assert len({d.id for d in deltas}) == 1  # partials of one message share its id
    assert chunks[-1].message_type == "usage_statistics"


async def test_reattach_from_seq_id_after_disconnecting(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await _agent(client, mnemo)
    mnemo.fake.script(
        Reply.tool_call("conversation_search", {"query": "a"}),
        Reply.tool_call("conversation_search", {"query": "b"}, delay=0.5),
        Reply.text("done"),
    )
    stream = await client.agents.messages.create(agent.id, input="go", streaming=True, background=True)
    first = None
    async for chunk in stream:
        first = chunk
        break  # the client goes away after one event
    await stream.close()
    assert first is not None and first.message_type == "tool_call_message"
    run_id = first.run_id
    rest = [c async for c in await client.runs.messages.stream(run_id, starting_after=first.seq_id)]
    types = [c.message_type for c in rest]
    assert types == [
        "tool_return_message",
        "tool_call_message",
        "tool_return_message",
        "assistant_message",
        "stop_reason",
        "usage_statistics",
    ]
    seqs = [first.seq_id] + [c.seq_id for c in rest if getattr(c, "seq_id", None) is not None]
    assert seqs == sorted(set(seqs))  # every event exactly once, in order
    # A finished run can be replayed from the start by anyone, any time.
    again = [c.message_type async for c in await client.runs.messages.stream(run_id, starting_after=0)]
    assert again == ["tool_call_message", *types]


class _Callbacks(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Callbacks.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


async def test_async_run_posts_its_callback(api_server: ApiServer, mnemo: Mnemo) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Callbacks)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
        agent = await _agent(client, mnemo)
        mnemo.fake.script(Reply.text("later"))
        run = await client.agents.messages.create_async(
            agent.id, input="hi", callback_url=f"http://127.0.0.1:{server.server_port}/done"
        )
        assert run.status in ("created", "running") and run.id.startswith("run-")
        for _ in range(200):
            if _Callbacks.received:
                break
            await asyncio.sleep(0.05)
        assert _Callbacks.received and _Callbacks.received[0]["run_id"] == run.id
        assert _Callbacks.received[0]["status"] == "completed"
        for _ in range(100):  # the outcome is recorded right after the POST returns
            row = await mnemo.runs.wait(run.id)
            if row.callback_status_code is not None:
                break
            await asyncio.sleep(0.05)
        assert row.callback_status_code == 204 and row.callback_error is None
    finally:
        server.shutdown()


async def test_cancel_through_the_client(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = Letta(base_url=api_server.base_url, max_retries=0)
    agent = await asyncio.to_thread(
        client.agents.create, memory_blocks=[], llm_config=fake_llm_config(mnemo.fake)
    )
    mnemo.fake.script(Reply.tool_call("conversation_search", {"query": "x"}, delay=1.0), Reply.text("never"))
    run = await asyncio.to_thread(client.agents.messages.create_async, agent.id, input="slow")
    for _ in range(100):
        if mnemo.fake.chat_requests:
            break
        await asyncio.sleep(0.05)
    result = await asyncio.to_thread(client.agents.messages.cancel, agent.id)
    assert result == {run.id: "cancelled"} or dict(result) == {run.id: "cancelled"}
    done = await mnemo.runs.wait(run.id, timeout=60)
    assert (done.status, done.stop_reason) == ("cancelled", "cancelled")
