"""The fake LLM, driven through litellm exactly as the LLM adapter will drive a real provider."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import socket
import subprocess
import sys
import time
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import litellm
import pytest
from litellm.exceptions import BadGatewayError, MidStreamFallbackError

from mnemo.fakellm import FakeLLM, FakeLLMClient, Fault, Reply

litellm.suppress_debug_info = True

USER = [{"role": "user", "content": "What is in my memory?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "memory_insert",
            "description": "Insert text into a memory block.",
            "parameters": {
                "type": "object",
                "properties": {"label": {"type": "string"}, "new_string": {"type": "string"}},
                "required": ["label", "new_string"],
            },
        },
    }
]


async def complete(base_url: str, model: str = "fake", **kwargs: Any) -> Any:
    kwargs.setdefault("messages", USER)
    return await litellm.acompletion(
        model=f"openai/{model}", api_base=base_url, api_key="x", num_retries=0, **kwargs
    )


def rebuild(chunks: list[Any]) -> Any:
    return litellm.stream_chunk_builder(chunks, messages=USER)


def retry_after(exc: BaseException) -> str | None:
    """How the LLM adapter reads it: litellm attaches the provider's headers to the exception it raises
    (`exc.response` is a synthetic response without them)."""
    headers: httpx.Headers | None = getattr(exc, "litellm_response_headers", None)
    return headers.get("retry-after") if headers is not None else None


async def stream(base_url: str, **kwargs: Any) -> list[Any]:
    response = await complete(base_url, stream=True, **kwargs)
    return [chunk async for chunk in response]


# --- replies ------------------------------------------------------------------------------------


async def test_text_reply_with_estimated_usage(fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply.text("Your memory holds your name."))
    response = await complete(fake_llm.base_url)
    assert response.choices[0].message.content == "Your memory holds your name."
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.prompt_tokens == len(json.dumps(USER)) // 4
    assert response.usage.completion_tokens > 0


async def test_text_reply_knobs(fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply.text("cut short", finish_reason="length", usage=(123, 45)))
    response = await complete(fake_llm.base_url)
    assert response.choices[0].finish_reason == "length"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (123, 45)


async def test_delay_is_honoured(fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply.text("slow", delay=5.0), Reply.text("fast"))
    with pytest.raises(litellm.Timeout):
        await complete(fake_llm.base_url, timeout=0.3)
    assert (await complete(fake_llm.base_url, timeout=5)).choices[0].message.content == "fast"


async def test_one_tool_call(fake_llm: FakeLLM) -> None:
    args = {"label": "human", "new_string": "Name: Ada"}
    fake_llm.script(Reply.tool_call("memory_insert", args, id="call_fixed"))
    response = await complete(fake_llm.base_url, tools=TOOLS)
    (call,) = response.choices[0].message.tool_calls
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "call_fixed",
        "memory_insert",
        args,
    )
    assert response.choices[0].finish_reason == "tool_calls"


async def test_several_tool_calls_get_distinct_ids(fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply.tool_calls([("a", {"n": 1}), ("b", {"n": 2})]))
    response = await complete(fake_llm.base_url, tools=TOOLS)
    calls = response.choices[0].message.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("a", {"n": 1}),
        ("b", {"n": 2}),
    ]
    assert len({c.id for c in calls}) == 2 and all(c.id.startswith("call_") for c in calls)


async def test_streamed_text_arrives_in_pieces_with_usage(fake_llm: FakeLLM) -> None:
    text = "Streaming works one small piece at a time."
    fake_llm.script(Reply.text(text))
    chunks = await stream(fake_llm.base_url, stream_options={"include_usage": True})
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1 and "".join(pieces) == text
    rebuilt = rebuild(chunks)
    assert rebuilt.choices[0].message.content == text
    assert rebuilt.choices[0].finish_reason == "stop"
    assert rebuilt.usage.prompt_tokens == len(json.dumps(USER)) // 4


async def test_streamed_tool_calls_rebuild(fake_llm: FakeLLM) -> None:
    calls = [
        ("memory_insert", {"label": "human", "new_string": "likes tea"}),
        ("send_message", {"message": "ok"}),
    ]
    fake_llm.script(Reply.tool_calls(calls))
    chunks = await stream(fake_llm.base_url, tools=TOOLS)
    fragments = [
        tc.function.arguments
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
        for tc in c.choices[0].delta.tool_calls
        if tc.function and tc.function.arguments
    ]
    assert len(fragments) > len(calls)  # arguments really arrive split
    rebuilt = rebuild(chunks)
    message = rebuilt.choices[0].message
    assert [(tc.function.name, json.loads(tc.function.arguments)) for tc in message.tool_calls] == calls
    assert rebuilt.choices[0].finish_reason == "tool_calls"


async def test_raw_stream_layout(fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply.tool_call("t", {"k": "v" * 20}), Reply.text("no usage asked"))
    body = {"model": "fake", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    async with httpx.AsyncClient() as http:
        raw = (await http.post(f"{fake_llm.base_url}/chat/completions", json=body)).text
        plain = (
            await http.post(f"{fake_llm.base_url}/chat/completions", json={**body, "stream_options": None})
        ).text
    events = [line.removeprefix("data: ") for line in raw.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    head = next(c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("tool_calls"))
    assert head["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "t"
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    plain_events = [line.removeprefix("data: ") for line in plain.split("\n\n") if line]
    assert plain_events[-1] == "[DONE]"
    assert all("usage" not in json.loads(e) for e in plain_events[:-1])


async def test_embeddings_are_deterministic_unit_vectors(fake_llm: FakeLLM) -> None:
    async def embed(texts: list[str], **kwargs: Any) -> list[list[float]]:
        kwargs.setdefault("model", "openai/fake-embedding")
        response = await litellm.aembedding(api_base=fake_llm.base_url, api_key="x", input=texts, **kwargs)
        return [item["embedding"] for item in response.data]

    first, other = await embed(["remember the milk", "something else"])
    (again,) = await embed(["remember the milk"])
    assert len(first) == 384 and first == again and first != other
    assert math.isclose(sum(v * v for v in first), 1.0, rel_tol=1e-9)
    # litellm only forwards `dimensions` for models it knows support it.
    (small,) = await embed(["remember the milk"], model="openai/text-embedding-3-small", dimensions=16)
    assert len(small) == 16 and math.isclose(sum(v * v for v in small), 1.0, rel_tol=1e-9)


async def test_embeddings_base64_matches_floats(fake_llm: FakeLLM) -> None:
    body = {"model": "e", "input": "hello"}
    async with httpx.AsyncClient() as http:
        floats = (await http.post(f"{fake_llm.base_url}/embeddings", json=body)).json()
        b64 = (
            await http.post(f"{fake_llm.base_url}/embeddings", json={**body, "encoding_format": "base64"})
        ).json()
    decoded = array("f", base64.b64decode(b64["data"][0]["embedding"]))
    assert [round(v, 5) for v in decoded] == [round(v, 5) for v in floats["data"][0]["embedding"]]


async def test_models_route(fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply.text("x"), model="m-listed")
    async with httpx.AsyncClient() as http:
        ids = [m["id"] for m in (await http.get(f"{fake_llm.base_url}/models")).json()["data"]]
    assert "fake" in ids and "m-listed" in ids


# --- faults -------------------------------------------------------------------------------------


async def test_rate_limit_exposes_retry_after(fake_llm: FakeLLM) -> None:
    fake_llm.script(Fault.rate_limit(retry_after=7))
    with pytest.raises(litellm.RateLimitError) as caught:
        await complete(fake_llm.base_url)
    assert retry_after(caught.value) == "7"
    assert caught.value.status_code == 429
    assert len(fake_llm.chat_requests) == 1  # num_retries=0 really means one attempt


async def test_rate_limit_while_streaming(fake_llm: FakeLLM) -> None:
    fake_llm.script(Fault.rate_limit(retry_after=0.5))
    with pytest.raises(litellm.RateLimitError) as caught:
        await stream(fake_llm.base_url)
    assert retry_after(caught.value) == "0.5"


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault.server_error(), litellm.InternalServerError),
        (Fault.server_error(status=503), litellm.ServiceUnavailableError),
        (Fault.status(502), BadGatewayError),
        (Fault.context_overflow(), litellm.ContextWindowExceededError),
        (Fault.status(401), litellm.AuthenticationError),
        (Fault.status(404), litellm.NotFoundError),
        (Fault.status(400), litellm.BadRequestError),
    ],
)
async def test_http_faults_map_to_litellm_errors(
    fake_llm: FakeLLM, fault: Fault, expected: type[Exception]
) -> None:
    fake_llm.script(fault)
    with pytest.raises(expected) as caught:
        await complete(fake_llm.base_url)
    assert getattr(caught.value, "status_code", None) == fault.http_status
    assert (await complete(fake_llm.base_url)).choices[0].message.content.startswith("echo: ")


async def test_context_overflow_message_is_the_usual_one(fake_llm: FakeLLM) -> None:
    fake_llm.script(Fault.context_overflow())
    with pytest.raises(litellm.ContextWindowExceededError, match="maximum context length is"):
        await complete(fake_llm.base_url)


async def test_hang_times_out(fake_llm: FakeLLM) -> None:
    fake_llm.script(Fault.hang(seconds=10))
    with pytest.raises(litellm.Timeout):
        await complete(fake_llm.base_url, timeout=0.3)


async def test_hang_ends_in_504_when_client_waits(fake_llm: FakeLLM) -> None:
    fake_llm.script(Fault.hang(seconds=0.2))
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{fake_llm.base_url}/chat/completions", json={"model": "f", "messages": USER}
        )
    assert response.status_code == 504 and response.json()["error"]["type"] == "timeout"


async def test_cut_stream_raises_mid_iteration(fake_llm: FakeLLM) -> None:
    fake_llm.script(Fault.cut_stream(after_chunks=3))
    received: list[Any] = []
    response = await complete(fake_llm.base_url, stream=True)
    with pytest.raises(MidStreamFallbackError):
        async for chunk in response:
            received.append(chunk)
    assert 1 <= len(received) <= 3
    assert all(c.choices[0].finish_reason is None for c in received)


async def test_cut_without_streaming_is_a_connection_error(fake_llm: FakeLLM) -> None:
    fake_llm.script(Fault.cut_stream())
    # The OpenAI SDK says "Connection error"; litellm's own HTTP handler (mnemo.llm.client) says the
    # payload was not completed. Either way it is a server-side (retryable) failure.
    with pytest.raises(
        litellm.InternalServerError, match="Connection error|Response payload is not completed"
    ):
        await complete(fake_llm.base_url)


@pytest.mark.parametrize("streamed", [False, True])
async def test_malformed_tool_call_arguments(fake_llm: FakeLLM, streamed: bool) -> None:
    fake_llm.script(Fault.malformed_tool_call(name="memory_insert"))
    if streamed:
        message = rebuild(await stream(fake_llm.base_url)).choices[0].message
    else:
        message = (await complete(fake_llm.base_url)).choices[0].message
    (call,) = message.tool_calls
    assert call.function.name == "memory_insert"
    with pytest.raises(json.JSONDecodeError):
        json.loads(call.function.arguments)


# --- queues, policies, records ------------------------------------------------------------------


async def test_model_queue_then_global_queue_then_policy(fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply.text("for m1"), model="m1")
    fake_llm.script(Reply.text("global 1"), Reply.text("global 2"))

    async def say(model: str) -> str:
        return (await complete(fake_llm.base_url, model=model)).choices[0].message.content

    assert await say("m2") == "global 1"
    assert await say("m1") == "for m1"
    assert await say("m1") == "global 2"
    assert await say("m1") == "echo: What is in my memory?"
    assert fake_llm.pending == 0


async def test_concurrent_requests_each_take_one_item(fake_llm: FakeLLM) -> None:
    texts = [f"reply {i}" for i in range(20)]
    fake_llm.script(*(Reply.text(t) for t in texts))
    responses = await asyncio.gather(*(complete(fake_llm.base_url) for _ in texts))
    assert sorted(r.choices[0].message.content for r in responses) == sorted(texts)


async def test_echo_reads_text_parts(fake_llm: FakeLLM) -> None:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "+2"}]}
    ]
    assert (await complete(fake_llm.base_url, messages=messages)).choices[
        0
    ].message.content == "echo: part one+2"


async def test_tool_then_text_policy(fake_llm: FakeLLM) -> None:
    fake_llm.set_policy(
        "tool_then_text", tool_name="memory_insert", arguments={"label": "human", "new_string": "x"}
    )
    first = (await complete(fake_llm.base_url, tools=TOOLS)).choices[0].message
    (call,) = first.tool_calls
    assert call.function.name == "memory_insert" and json.loads(call.function.arguments)["new_string"] == "x"
    followup = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "ok"},
    ]
    second = (await complete(fake_llm.base_url, messages=followup, tools=TOOLS)).choices[0].message
    assert second.content == "done" and not second.tool_calls


async def test_default_reply_and_reset(fake_llm: FakeLLM) -> None:
    fake_llm.set_default(Fault.server_error(503))
    for _ in range(2):
        with pytest.raises(litellm.ServiceUnavailableError):
            await complete(fake_llm.base_url)
    fake_llm.set_default(Reply.text("ok"))
    assert (await complete(fake_llm.base_url)).choices[0].message.content == "ok"
    fake_llm.script(Reply.text("queued"))
    fake_llm.reset()
    assert fake_llm.requests == [] and fake_llm.pending == 0
    assert (await complete(fake_llm.base_url)).choices[0].message.content.startswith("echo: ")


async def test_requests_are_recorded_in_order(fake_llm: FakeLLM) -> None:
    await complete(fake_llm.base_url, tools=TOOLS, temperature=0.2)
    await litellm.aembedding(model="openai/emb", api_base=fake_llm.base_url, api_key="x", input=["a"])
    await complete(fake_llm.base_url, model="second")
    kinds = ["messages" in body for body in fake_llm.requests]
    assert kinds == [True, False, True]
    first, second = fake_llm.chat_requests
    assert first["messages"] == USER and first["tools"] == TOOLS and first["temperature"] == 0.2
    assert second["model"] == "second"
    assert fake_llm.embedding_requests == [fake_llm.requests[1]]


async def test_control_api_rejects_bad_scripts(fake_llm: FakeLLM) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{fake_llm.base_url[:-3]}/_fake/script", json={"items": [{"kind": "nope"}]}
        )
    assert response.status_code == 400 and "Invalid control request" in response.json()["error"]["message"]


# --- another process, scripted over HTTP --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _run(command: list[str], port: int) -> Iterator[FakeLLMClient]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    client = FakeLLMClient(f"http://127.0.0.1:{port}/v1")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.health()
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    output = process.communicate(timeout=10)[0].decode()
                    pytest.fail(f"fake LLM process did not come up: {output}")
                time.sleep(0.05)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def remote_fake() -> Iterator[FakeLLMClient]:
    port = _free_port()
    with _run([sys.executable, "-m", "mnemo.fakellm.server", "--port", str(port)], port) as client:
        yield client


async def test_client_scripts_a_fake_in_another_process(remote_fake: FakeLLMClient) -> None:
    remote_fake.reset()
    base = remote_fake.base_url
    remote_fake.script(Reply.tool_call("memory_insert", {"label": "human"}, id="call_r"), model="m1")
    remote_fake.script(Fault.rate_limit(retry_after=3), Fault.cut_stream(after_chunks=1))
    with pytest.raises(litellm.RateLimitError) as caught:
        await complete(base)
    assert retry_after(caught.value) == "3"
    with pytest.raises(MidStreamFallbackError):
        await stream(base)
    (call,) = (await complete(base, model="m1")).choices[0].message.tool_calls
    assert call.id == "call_r"
    assert remote_fake.pending == 0

    remote_fake.set_default(Reply.text("fixed", usage=(5, 6)))
    fixed = await complete(base)
    assert fixed.choices[0].message.content == "fixed"
    assert (fixed.usage.prompt_tokens, fixed.usage.completion_tokens) == (5, 6)
    remote_fake.set_policy("tool_then_text", tool_name="t", arguments={"a": 1})
    assert (await complete(base)).choices[0].message.tool_calls[0].function.name == "t"
    await litellm.aembedding(model="openai/e", api_base=base, api_key="x", input="hi")

    assert len(remote_fake.requests) == 6 and len(remote_fake.chat_requests) == 5
    assert remote_fake.chat_requests[2]["model"] == "m1"
    remote_fake.reset()
    assert remote_fake.requests == []
    assert (await complete(base)).choices[0].message.content == "echo: What is in my memory?"


def test_mnemo_cli_runs_the_fake() -> None:
    port = _free_port()
    mnemo = Path(sys.executable).parent / "mnemo"
    with _run([str(mnemo), "fake-llm", "--port", str(port)], port) as client:
        client.script(Reply.text("from the cli"))
        response = httpx.post(f"{client.base_url}/chat/completions", json={"model": "f", "messages": USER})
        assert response.json()["choices"][0]["message"]["content"] == "from the cli"
        assert client.chat_requests[0]["messages"] == USER
