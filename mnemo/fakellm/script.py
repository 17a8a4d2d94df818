"""What the fake LLM can be told to do: replies, faults and the fallback policy.

These are pydantic models so the same script travels unchanged over the `/_fake/` control API to a
fake that runs in another process.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


class ToolCall(BaseModel):
    """One tool call. `arguments` is the raw text sent on the wire, so it may be invalid JSON."""

    name: str
    arguments: str = "{}"
    id: str = Field(default_factory=new_call_id)


class Reply(BaseModel):
    """A successful assistant message: text, tool calls, or both."""

    kind: Literal["reply"] = "reply"
    content: str | None = None
    calls: list[ToolCall] = Field(default_factory=list)
    finish_reason: str | None = None
    delay: float = 0.0
    usage: tuple[int, int] | None = None  # (prompt_tokens, completion_tokens); estimated when None

    @property
    def effective_finish_reason(self) -> str:
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.calls else "stop"

    @classmethod
    def text(
        cls,
        content: str,
        *,
        finish_reason: str | None = None,
        delay: float = 0.0,
        usage: tuple[int, int] | None = None,
    ) -> Reply:
        return cls(content=content, finish_reason=finish_reason, delay=delay, usage=usage)

    @classmethod
    def tool_call(
        cls,
        name: str,
        args: dict[str, Any] | None = None,
        *,
        id: str | None = None,
        content: str | None = None,
        finish_reason: str | None = None,
        delay: float = 0.0,
        usage: tuple[int, int] | None = None,
    ) -> Reply:
        call = ToolCall(name=name, arguments=json.dumps(args or {}), id=id or new_call_id())
        return cls(content=content, calls=[call], finish_reason=finish_reason, delay=delay, usage=usage)

    @classmethod
    def tool_calls(
        cls,
        calls: list[tuple[str, dict[str, Any]]],
        *,
        content: str | None = None,
        finish_reason: str | None = None,
        delay: float = 0.0,
        usage: tuple[int, int] | None = None,
    ) -> Reply:
        tool_calls = [ToolCall(name=name, arguments=json.dumps(args)) for name, args in calls]
        return cls(content=content, calls=tool_calls, finish_reason=finish_reason, delay=delay, usage=usage)


FaultType = Literal["rate_limit", "server_error", "hang", "cut_stream", "malformed_tool_call", "http_error"]

_CUT_TEXT = "This reply is cut off part way through because the connection drops before it ends."


class Fault(BaseModel):
    """A provider failure. Build one with the class methods; the fields are the wire form."""

    kind: Literal["fault"] = "fault"
    type: FaultType
    http_status: int = 500
    message: str = ""
    error_type: str = "server_error"
    code: str | None = None
    retry_after: float | None = None
    seconds: float = 0.0
    after_chunks: int = 0
    reply: Reply | None = None  # what cut_stream / malformed_tool_call send before failing
    delay: float = 0.0

    @classmethod
    def rate_limit(cls, retry_after: float | None = 1.0, message: str | None = None) -> Fault:
        return cls(
            type="rate_limit",
            http_status=429,
            message=message or "Rate limit reached for requests. Please try again later.",
            error_type="requests",
            code="rate_limit_exceeded",
            retry_after=retry_after,
        )

    @classmethod
    def server_error(cls, status: int = 500, message: str | None = None) -> Fault:
        return cls(
            type="server_error",
            http_status=status,
            message=message or "The server had an error while processing your request. Sorry about that!",
            error_type="server_error",
        )

    @classmethod
    def hang(cls, seconds: float = 30.0) -> Fault:
        return cls(
            type="hang",
            http_status=504,
            seconds=seconds,
            message="Gateway timeout: the model did not answer in time.",
            error_type="timeout",
        )

    @classmethod
    def cut_stream(cls, after_chunks: int = 2, reply: Reply | None = None) -> Fault:
        return cls(type="cut_stream", after_chunks=after_chunks, reply=reply or Reply.text(_CUT_TEXT))

    @classmethod
    def malformed_tool_call(cls, name: str = "x", arguments: str = '{"broken": ') -> Fault:
        return cls(type="malformed_tool_call", reply=Reply(calls=[ToolCall(name=name, arguments=arguments)]))

    @classmethod
    def context_overflow(cls, max_tokens: int = 8192, requested: int = 9000) -> Fault:
        return cls(
            type="http_error",
            http_status=400,
            message=(
                f"This model's maximum context length is {max_tokens} tokens. However, your messages "
                f"resulted in {requested} tokens. Please reduce the length of the messages."
            ),
            error_type="invalid_request_error",
            code="context_length_exceeded",
        )

    @classmethod
    def status(cls, status: int, message: str | None = None) -> Fault:
        """An OpenAI-shaped error with any HTTP status (401 auth, 404 unknown model, 400, 403, ...)."""
        error_type, code, default = _STATUS_ERRORS.get(
            status, ("invalid_request_error", None, f"Request failed with status {status}.")
        )
        if status >= 500:
            error_type = "server_error"
        return cls(
            type="http_error",
            http_status=status,
            message=message or default,
            error_type=error_type,
            code=code,
        )


_STATUS_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key in your provider's dashboard.",
    ),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Access denied."),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
}

Scripted = Annotated[Reply | Fault, Field(discriminator="kind")]


class Policy(BaseModel):
    """What answers a chat request when no scripted item is left."""

    name: Literal["echo", "tool_then_text", "fixed"] = "echo"
    tool_name: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    item: Scripted | None = None  # for "fixed"


# --- control API bodies -------------------------------------------------------------------------


class ScriptBody(BaseModel):
    items: list[Scripted]
    model: str | None = None


class DefaultBody(BaseModel):
    item: Scripted


class PolicyBody(BaseModel):
    name: Literal["echo", "tool_then_text"]
    tool_name: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
