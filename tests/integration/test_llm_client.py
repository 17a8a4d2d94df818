"""The LLM adapter against the fake LLM (a real OpenAI-compatible HTTP server): replies, streaming,
and every provider fault turned into the right `LLMError`, each after exactly one request."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest

from mnemo.config import Settings
from mnemo.fakellm import FakeLLM, Fault, Reply
from mnemo.llm.client import ChatResult, Delta, complete, parse_arguments
from mnemo.llm.config import LLMConfig, resolve_llm_config
from mnemo.llm.errors import (
    LLM_AUTHENTICATION,
    LLM_ERROR,
    LLM_RATE_LIMIT,
    LLM_TIMEOUT,
    ContextWindowExceeded,
    InvalidToolCallArguments,
    LLMError,
)

USER = [{"role": "user", "content": "Remember that my name is Ada."}]
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
    },
    {
        "type": "function",
        "function": {
            "name": "send_message",
            "description": "Reply to the user.",
            "parameters": {"type": "object", "properties": {"message": {"type": "string"}}},
        },
    },
]

# Generous next to a fake that answers at once, short next to the 30 s hang; the first litellm call
# in a process also spends a few hundred ms loading provider modules.
SHORT_TIMEOUT = 2.0


def config_for(fake: FakeLLM, **overrides: Any) -> LLMConfig:
    raw = {"model": "fake", "model_endpoint_type": "openai", "model_endpoint": fake.base_url, **overrides}
    return resolve_llm_config(None, raw, Settings(_env_file=None, default_model=None))  # type: ignore[call-arg]


class Recorder:
    def __init__(self) -> None:
        self.deltas: list[Delta] = []

    async def __call__(self, delta: Delta) -> None:
        self.deltas.append(delta)

    def text(self, kind: str = "text") -> str:
        return "".join(d.text or "" for d in self.deltas if d.kind == kind)

    def arguments(self, index: int) -> str:
        return "".join(
            d.arguments_delta or ""
            for d in self.deltas
            if d.kind == "tool_call" and d.tool_call_index == index
        )


async def fails(fake: FakeLLM, *, stream: bool = False, **kwargs: Any) -> LLMError:
    with pytest.raises(LLMError) as info:
        await complete(config_for(fake), USER, stream=stream, **kwargs)
    assert len(fake.chat_requests) == 1, "the adapter must not retry: Temporal does"
    return info.value


# --- replies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_text_reply(fake_llm: FakeLLM, stream: bool) -> None:
    fake_llm.script(Reply.text("Nice to meet you, Ada.", usage=(21, 7)))
    result = await complete(config_for(fake_llm), USER, stream=stream)
    assert result.text == "Nice to meet you, Ada."
    assert result.tool_calls == []
    assert result.finish_reason == "stop"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (
        21,
        7,
        28,
    )
    assert result.model == "fake"
    assert len(fake_llm.chat_requests) == 1


async def test_request_body(fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply.text("ok"))
    config = config_for(fake_llm, temperature=0.3, max_tokens=64)
    await complete(config, USER, TOOLS, tool_choice="required", parallel_tool_calls=False)
    (body,) = fake_llm.chat_requests
    assert body["model"] == "fake"
    assert body["messages"] == USER
    assert [t["function"]["name"] for t in body["tools"]] == ["memory_insert", "send_message"]
    assert body["tool_choice"] == "required"
    assert body["parallel_tool_calls"] is False
    assert (body["temperature"], body["max_tokens"]) == (0.3, 64)
    assert not body.get("stream")


async def test_streaming_request_asks_for_usage(fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply.text("ok"))
    await complete(config_for(fake_llm), USER, stream=True)
    (body,) = fake_llm.chat_requests
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_tool_call(fake_llm: FakeLLM) -> None:
    args = {"label": "human", "new_string": "Name: Ada"}
    fake_llm.script(Reply.tool_call("memory_insert", args, id="call_abc"))
    result = await complete(config_for(fake_llm), USER, TOOLS)
    assert result.finish_reason == "tool_calls"
    assert [(c.id, c.name) for c in result.tool_calls] == [("call_abc", "memory_insert")]
    assert parse_arguments(result.tool_calls[0]) == args


async def test_several_tool_calls(fake_llm: FakeLLM) -> None:
    calls = [
        ("memory_insert", {"label": "human", "new_string": "Ada"}),
        ("send_message", {"message": "Hi Ada"}),
    ]
    fake_llm.script(Reply.tool_calls(calls, content="Saving that."))
    result = await complete(config_for(fake_llm), USER, TOOLS)
    assert result.text == "Saving that."
    assert [(c.name, parse_arguments(c)) for c in result.tool_calls] == calls
    assert len({c.id for c in result.tool_calls}) == 2


async def test_streamed_text_deltas_add_up_to_the_reply(fake_llm: FakeLLM) -> None:
    content = "Nice to meet you, Ada. I will remember your name from now on."
    fake_llm.script(Reply.text(content))
    recorder = Recorder()
    result = await complete(config_for(fake_llm), USER, stream=True, on_delta=recorder)
    assert result.text == content
    assert len(recorder.deltas) > 1, "the fake streams a reply in several chunks"
    assert {d.kind for d in recorder.deltas} == {"text"}
    assert recorder.text() == content
    assert result.usage.completion_tokens > 0


async def test_streamed_tool_calls_are_rebuilt(fake_llm: FakeLLM) -> None:
    calls = [
        ("memory_insert", {"label": "human", "new_string": "The user's name is Ada Lovelace."}),
        ("send_message", {"message": "Nice to meet you, Ada!"}),
    ]
    fake_llm.script(Reply.tool_calls(calls, content="Let me note that."))
    recorder = Recorder()
    result = await complete(config_for(fake_llm), USER, TOOLS, stream=True, on_delta=recorder)

    assert result.finish_reason == "tool_calls"
    assert result.text == "Let me note that." == recorder.text()
    assert [(c.name, parse_arguments(c)) for c in result.tool_calls] == calls
    for index, call in enumerate(result.tool_calls):
        starts = [d for d in recorder.deltas if d.tool_call_index == index and d.tool_call_id]
        assert [(d.tool_call_id, d.tool_name) for d in starts] == [(call.id, call.name)]
        assert recorder.arguments(index) == call.arguments


async def test_malformed_tool_call_is_a_result_not_an_error(fake_llm: FakeLLM) -> None:
    fake_llm.script(Fault.malformed_tool_call("memory_insert", arguments='{"label": "hum'))
    result = await complete(config_for(fake_llm), USER, TOOLS)
    (call,) = result.tool_calls
    assert (call.name, call.arguments) == ("memory_insert", '{"label": "hum')
    with pytest.raises(InvalidToolCallArguments, match="memory_insert"):
        parse_arguments(call)


async def test_on_delta_errors_propagate_unchanged(fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply.text("hello there"))

    async def broken(delta: Delta) -> None:
        raise RuntimeError("event log is down")

    with pytest.raises(RuntimeError, match="event log is down"):
        await complete(config_for(fake_llm), USER, stream=True, on_delta=broken)


async def test_repeated_calls_share_one_config(fake_llm: FakeLLM) -> None:
    config = config_for(fake_llm)
    fake_llm.script(*[Reply.text(f"reply {i}") for i in range(20)])
    results: list[ChatResult] = [await complete(config, USER) for _ in range(20)]
    assert [r.text for r in results] == [f"reply {i}" for i in range(20)]
    assert len(fake_llm.chat_requests) == 20


def established_to(port: int) -> int:
    """Open client connections to 127.0.0.1:port, from the kernel's table (remote port, ESTABLISHED)."""
    count = 0
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[2].split(":")[1], 16) == port and fields[3] == "01":
                count += 1
    return count


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux's TCP table")
async def test_calls_reuse_pooled_connections(fake_llm: FakeLLM) -> None:
    config = config_for(fake_llm, model="pooled")  # its own litellm client, whatever ran before
    await complete(config, USER)
    before = established_to(fake_llm.port)
    for i in range(10):
        # Different deadlines and modes must not mean different clients, hence new connections.
        await complete(config, USER, stream=bool(i % 2), timeout=30 + i, idle_timeout=20 + i)
    # One pooled connection, maybe replaced once (server keep-alive expiry); without pooling, +10.
    assert established_to(fake_llm.port) <= before + 1


# --- faults -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_rate_limit_is_retryable_with_retry_after(fake_llm: FakeLLM, stream: bool) -> None:
    fake_llm.script(Fault.rate_limit(retry_after=2.5))
    err = await fails(fake_llm, stream=stream)
    assert (err.retryable, err.error_type, err.status, err.retry_after) == (True, LLM_RATE_LIMIT, 429, 2.5)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retryable(fake_llm: FakeLLM, status: int) -> None:
    fake_llm.script(Fault.server_error(status))
    err = await fails(fake_llm)
    assert (err.retryable, err.error_type, err.status) == (True, LLM_ERROR, status)


@pytest.mark.parametrize("stream", [False, True])
async def test_hang_hits_the_total_timeout(fake_llm: FakeLLM, stream: bool) -> None:
    fake_llm.script(Fault.hang(30))
    err = await fails(fake_llm, stream=stream, timeout=SHORT_TIMEOUT)
    assert (err.retryable, err.error_type) == (True, LLM_TIMEOUT)
    assert "did not finish" in err.message


async def test_hang_hits_the_stream_idle_timeout(fake_llm: FakeLLM) -> None:
    fake_llm.script(Fault.hang(30))
    err = await fails(fake_llm, stream=True, idle_timeout=SHORT_TIMEOUT)
    assert (err.retryable, err.error_type) == (True, LLM_TIMEOUT)
    assert "sent nothing" in err.message


async def test_connection_is_usable_after_a_timeout(fake_llm: FakeLLM) -> None:
    # A cancelled request must not leave a half-used connection in the pool for the next call.
    fake_llm.script(Fault.hang(30), Reply.text("back again"))
    config = config_for(fake_llm)
    with pytest.raises(LLMError):
        await complete(config, USER, timeout=SHORT_TIMEOUT)
    result = await complete(config, USER)
    assert result.text == "back again"


async def test_cut_stream_is_retryable(fake_llm: FakeLLM) -> None:
    fake_llm.script(Fault.cut_stream(after_chunks=2))
    recorder = Recorder()
    err = await fails(fake_llm, stream=True, on_delta=recorder)
    assert err.retryable is True
    assert recorder.deltas, "the chunks before the cut were forwarded"


async def test_cut_response_without_streaming_is_retryable(fake_llm: FakeLLM) -> None:
    fake_llm.script(Fault.cut_stream(after_chunks=2))
    err = await fails(fake_llm)
    assert err.retryable is True


@pytest.mark.parametrize("stream", [False, True])
async def test_context_overflow(fake_llm: FakeLLM, stream: bool) -> None:
    fake_llm.script(Fault.context_overflow(max_tokens=8192, requested=9000))
    err = await fails(fake_llm, stream=stream)
    assert isinstance(err, ContextWindowExceeded)
    assert err.retryable is False
    assert "8192" in err.message


async def test_authentication_error_is_not_retryable(fake_llm: FakeLLM) -> None:
    fake_llm.script(Fault.status(401))
    err = await fails(fake_llm)
    assert (err.retryable, err.error_type, err.status) == (False, LLM_AUTHENTICATION, 401)


@pytest.mark.parametrize("status", [400, 403, 404, 422])
async def test_client_errors_are_not_retryable(fake_llm: FakeLLM, status: int) -> None:
    fake_llm.script(Fault.status(status))
    err = await fails(fake_llm)
    assert (err.retryable, err.status) == (False, status)
    assert not isinstance(err, ContextWindowExceeded)


async def test_request_timeout_and_conflict_statuses_are_retryable(fake_llm: FakeLLM) -> None:
    for status in (408, 409):
        fake_llm.reset()
        fake_llm.script(Fault.status(status))
        err = await fails(fake_llm)
        assert err.retryable is True, status


async def test_unreachable_endpoint_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        raw = {
            "model": "fake",
            "model_endpoint_type": "openai",
            "model_endpoint": f"http://127.0.0.1:{port}/v1",
        }
        config = resolve_llm_config(None, raw, Settings(_env_file=None, default_model=None))  # type: ignore[call-arg]
        for stream in (False, True):
            with pytest.raises(LLMError) as info:
                await complete(config, USER, stream=stream, timeout=10)
            assert info.value.retryable is True
