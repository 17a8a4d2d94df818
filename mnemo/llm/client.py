"""One model call through litellm: request, optional streaming with deltas, classified errors.

Temporal owns retries, so litellm's and the OpenAI SDK's are off and every failure leaves as an
`LLMError` that says whether to retry. Streams have their own idle timeout so a stalled provider
fails retryably long before the activity's `start_to_close_timeout`.

Connections are pooled by litellm: it caches one HTTP client (and its connection pool) per endpoint
and HTTP timeout. The caller's `timeout` is therefore enforced here with `asyncio.timeout`, and litellm
always gets the same `_HTTP_TIMEOUT`, so calls with different deadlines still share one pool.

OpenAI-compatible endpoints are called through litellm's own HTTP handler, not the OpenAI SDK
(`EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER`, on unless the environment sets it): the SDK walks every
message and tool schema through its typed-dict transforms on each request, ~2 ms of CPU per step with
a short context and ~28 ms with 200 messages, against ~3 ms either way here. Requests, replies and
error classes are the same (tests/integration/test_llm_client.py); some error messages differ.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER", "True")

import litellm  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

from mnemo.llm.config import LLMConfig, litellm_params  # noqa: E402
from mnemo.llm.errors import LLM_TIMEOUT, InvalidToolCallArguments, LLMError, classify  # noqa: E402

litellm.suppress_debug_info = True

# A backstop only (httpx applies it per read, not per call): the real deadlines are `timeout` and
# `idle_timeout` below. Constant so it never splits litellm's client cache.
_HTTP_TIMEOUT = 3600.0


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: str  # raw JSON text as the model sent it; see parse_arguments


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0


class Delta(BaseModel):
    """One streamed increment. Tool call deltas carry the call's index; id and name come once."""

    kind: Literal["text", "reasoning", "tool_call"]
    text: str | None = None
    tool_call_index: int | None = None
    tool_call_id: str | None = None
    tool_name: str | None = None
    arguments_delta: str | None = None


class ChatResult(BaseModel):
    text: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    model: str


OnDelta = Callable[[Delta], Awaitable[None]]


async def complete(
    config: LLMConfig,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    *,
    tool_choice: str | dict[str, Any] | None = None,
    parallel_tool_calls: bool | None = None,
    stream: bool = False,
    on_delta: OnDelta | None = None,
    timeout: float = 600,  # noqa: ASYNC109 -- the signature the llm.step activity calls
    idle_timeout: float | None = None,
) -> ChatResult:
    """Call the model once. Raises `LLMError` (or `ContextWindowExceeded`) on any provider failure.

    `timeout` bounds the whole call. `idle_timeout` (streaming only) bounds the wait for the response
    and for each next chunk; time spent in `on_delta` does not count. Exceptions raised by `on_delta`
    propagate unchanged.
    """
    kwargs = _request(config, messages, tools, tool_choice, parallel_tool_calls, stream)
    try:
        async with asyncio.timeout(timeout) as total:
            if stream:
                return await _stream(kwargs, config, on_delta, idle_timeout)
            try:
                response = await litellm.acompletion(**kwargs)
            except Exception as exc:
                raise classify(exc) from exc
            return _from_response(response, config)
    except TimeoutError as exc:
        if total.expired():
            raise LLMError(
                f"The model did not finish within {timeout:g}s", retryable=True, error_type=LLM_TIMEOUT
            ) from exc
        raise


def parse_arguments(tool_call: ToolCall) -> dict[str, Any]:
    """The call's arguments as a dict; `InvalidToolCallArguments` if they are not a JSON object."""
    raw = tool_call.arguments
    if not raw.strip():
        return {}  # some providers send "" for a tool without parameters
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidToolCallArguments(tool_call.name, tool_call.id, raw, f"not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise InvalidToolCallArguments(
            tool_call.name, tool_call.id, raw, f"expected a JSON object, got {type(value).__name__}"
        )
    return value


def _request(
    config: LLMConfig,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    tool_choice: str | dict[str, Any] | None,
    parallel_tool_calls: bool | None,
    stream: bool,
) -> dict[str, Any]:
    kwargs = litellm_params(config)
    kwargs.update(
        messages=messages,
        timeout=_HTTP_TIMEOUT,
        # Temporal retries; a second retry layer here multiplies calls per logical failure.
        num_retries=0,
        max_retries=0,
        # Sampling fields a given model does not take (temperature on o-series…) are dropped, not fatal.
        drop_params=True,
    )
    if tools:
        kwargs["tools"] = tools
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        parallel = parallel_tool_calls if parallel_tool_calls is not None else config.parallel_tool_calls
        if parallel is not None:
            kwargs["parallel_tool_calls"] = parallel
    if stream:
        kwargs["stream"] = True
        kwargs["stream_options"] = {"include_usage": True}
    return kwargs


async def _stream(
    kwargs: dict[str, Any], config: LLMConfig, on_delta: OnDelta | None, idle_timeout: float | None
) -> ChatResult:
    loop = asyncio.get_running_loop()

    def deadline() -> float | None:
        return None if idle_timeout is None else loop.time() + idle_timeout

    acc = _Accumulator(config.model)
    response: Any = None
    try:
        async with asyncio.timeout_at(deadline()) as idle:
            try:
                response = await litellm.acompletion(**kwargs)
            except Exception as exc:
                raise classify(exc) from exc
            chunks = response.__aiter__()
            while True:
                idle.reschedule(deadline())
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    raise classify(exc) from exc
                idle.reschedule(None)
                for delta in acc.add(chunk):
                    if on_delta is not None:
                        await on_delta(delta)
    except TimeoutError as exc:
        if idle.expired():
            raise LLMError(
                f"The model sent nothing for {idle_timeout:g}s", retryable=True, error_type=LLM_TIMEOUT
            ) from exc
        raise
    finally:
        if response is not None:
            # Releases the pooled connection now rather than when the wrapper is collected.
            await response.aclose()
    if acc.finish_reason is None:
        # A dropped connection can end the stream quietly; the reply is partial, so ask again.
        raise LLMError("The model's stream ended before the reply was complete", retryable=True)
    return acc.result()


class _Accumulator:
    """Rebuilds the complete reply from stream chunks while turning each into `Delta`s."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage = Usage()

    def add(self, chunk: Any) -> list[Delta]:
        if getattr(chunk, "model", None):
            self.model = chunk.model
        usage = getattr(chunk, "usage", None)
        if usage:
            self.usage = _usage(usage)
        out: list[Delta] = []
        for choice in getattr(chunk, "choices", None) or []:
            if getattr(choice, "index", 0) not in (0, None):
                continue
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
            delta = getattr(choice, "delta", None)
            if delta is None:
                continue
            reasoning = getattr(delta, "reasoning_content", None)
            if reasoning:
                self.reasoning.append(reasoning)
                out.append(Delta(kind="reasoning", text=reasoning))
            if delta.content:
                self.text.append(delta.content)
                out.append(Delta(kind="text", text=delta.content))
            for call in getattr(delta, "tool_calls", None) or []:
                item = self._tool_call(call)
                if item is not None:
                    out.append(item)
        return out

    def _tool_call(self, call: Any) -> Delta | None:
        index = getattr(call, "index", None)
        call_id = getattr(call, "id", None) or None
        if index is None:
            # Servers that omit the index send each call whole: a new id starts a new call.
            known = {c["id"]: i for i, c in self.calls.items()}
            if call_id is not None:
                index = known.get(call_id, len(self.calls))
            else:
                index = max(self.calls, default=0)
        entry = self.calls.setdefault(index, {"id": None, "name": "", "arguments": []})
        function = getattr(call, "function", None)
        name = getattr(function, "name", None) or None
        arguments = getattr(function, "arguments", None) or None
        if call_id and not entry["id"]:
            entry["id"] = call_id
        if name and not entry["name"]:
            # Some servers repeat the name in every chunk; OpenAI sends it once.
            entry["name"] = name
        if arguments:
            entry["arguments"].append(arguments)
        if not (call_id or name or arguments):
            return None
        return Delta(
            kind="tool_call",
            tool_call_index=index,
            tool_call_id=call_id,
            tool_name=name,
            arguments_delta=arguments,
        )

    def result(self) -> ChatResult:
        calls = [
            ToolCall(id=c["id"] or _new_call_id(), name=c["name"], arguments="".join(c["arguments"]))
            for _, c in sorted(self.calls.items())
        ]
        return ChatResult(
            text="".join(self.text) or None,
            reasoning="".join(self.reasoning) or None,
            tool_calls=calls,
            finish_reason=self.finish_reason,
            usage=self.usage,
            model=self.model,
        )


def _from_response(response: Any, config: LLMConfig) -> ChatResult:
    choices = getattr(response, "choices", None) or []
    if not choices:
        raise LLMError("The model returned no choices", retryable=True)
    choice = choices[0]
    message = choice.message
    calls = [
        ToolCall(
            id=getattr(call, "id", None) or _new_call_id(),
            name=call.function.name or "",
            arguments=call.function.arguments or "",
        )
        for call in (getattr(message, "tool_calls", None) or [])
    ]
    usage = getattr(response, "usage", None)
    return ChatResult(
        text=message.content or None,
        reasoning=getattr(message, "reasoning_content", None) or None,
        tool_calls=calls,
        finish_reason=choice.finish_reason,
        usage=_usage(usage) if usage else Usage(),
        model=getattr(response, "model", None) or config.model,
    )


def _usage(usage: Any) -> Usage:
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=int(getattr(usage, "total_tokens", 0) or 0) or prompt + completion,
        cached_input_tokens=int(getattr(prompt_details, "cached_tokens", 0) or 0),
        reasoning_tokens=int(getattr(completion_details, "reasoning_tokens", 0) or 0),
    )


def _new_call_id() -> str:
    # Some OpenAI-compatible servers omit ids; tool returns need one to refer to.
    return f"call_{uuid.uuid4().hex[:24]}"
