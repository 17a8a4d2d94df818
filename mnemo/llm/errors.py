"""Provider errors → one `LLMError` that says whether Temporal should retry, and when.

Provider SDK retries are off (litellm `num_retries=0`, OpenAI `max_retries=0`): Temporal owns retries,
so every failure must carry `retryable` and, when the provider said so, `retry_after`. The mapping
follows HTTP semantics: 408/409/429/5xx, timeouts and connection failures are transient; other 4xx
(auth, bad request, not found, unprocessable) will fail the same way again. A context-length 400 is
its own class because the agent loop answers it by compacting, not by retrying.

This module must not import litellm: classifying by duck typing (`status_code`, `response.headers`)
keeps it cheap to import in workflow code and robust to litellm's many wrapper classes.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from typing import Any

# Letta's `error_type` values (services/streaming_service.py); the API layer sends them verbatim.
LLM_TIMEOUT = "llm_timeout"
LLM_RATE_LIMIT = "llm_rate_limit"
LLM_AUTHENTICATION = "llm_authentication"
LLM_EMPTY_RESPONSE = "llm_empty_response"
LLM_ERROR = "llm_error"

# Phrases providers use for a prompt that does not fit (OpenAI, Anthropic, vLLM, Ollama, Gemini…),
# for the 400s litellm does not already turn into ContextWindowExceededError.
_CONTEXT_OVERFLOW = re.compile(
    r"maximum context length|context[ _]length[ _]exceeded|context window|prompt is too long"
    r"|input is too long|too many tokens|exceeds? the (?:model'?s? )?(?:maximum )?(?:context|token)"
    r"|reduce the length of the messages",
    re.IGNORECASE,
)


class LLMError(Exception):
    """A failed model call, classified. `str(err)` is the provider's message."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        error_type: str = LLM_ERROR,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.error_type = error_type
        self.status = status
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments break default exception pickling (multiprocessing, Temporal details).
        return (_rebuild, (type(self), self.message, self._fields()))

    def _fields(self) -> dict[str, Any]:
        return {
            "retryable": self.retryable,
            "error_type": self.error_type,
            "status": self.status,
            "retry_after": self.retry_after,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, retryable={self.retryable}, "
            f"error_type={self.error_type!r}, status={self.status}, retry_after={self.retry_after})"
        )


def _rebuild(cls: type[LLMError], message: str, fields: dict[str, Any]) -> LLMError:
    if issubclass(cls, ContextWindowExceeded):
        return cls(message, status=fields["status"])
    return cls(message, **fields)


class ContextWindowExceeded(LLMError):
    """The prompt does not fit the model. Not retryable as is: the loop compacts and calls again."""

    def __init__(self, message: str, *, status: int | None = 400, **_ignored: Any) -> None:
        super().__init__(message, retryable=False, error_type=LLM_ERROR, status=status)


class InvalidToolCallArguments(ValueError):
    """The model's tool call arguments are not a JSON object. The loop reports it back to the model."""

    def __init__(self, tool_name: str, tool_call_id: str, raw: str, reason: str) -> None:
        shown = raw if len(raw) <= 200 else raw[:200] + "…"
        super().__init__(
            f"Invalid arguments for tool call {tool_name!r} ({tool_call_id}): {reason}. Received: {shown!r}"
        )
        self.tool_name = tool_name
        self.tool_call_id = tool_call_id
        self.raw = raw
        self.reason = reason


def classify(exc: BaseException) -> LLMError:
    """Map any exception raised by a model call to an `LLMError` (returned, not raised)."""
    if isinstance(exc, LLMError):
        return exc
    message = _message(exc)
    names = {cls.__name__ for cls in type(exc).__mro__}
    status = _status(exc)
    headers = _headers(exc)

    if "ContextWindowExceededError" in names or (
        status in (400, 413, 422) and _CONTEXT_OVERFLOW.search(message)
    ):
        return ContextWindowExceeded(message, status=status)

    # Timeouts first: litellm.Timeout subclasses APITimeoutError, itself an APIConnectionError.
    if isinstance(exc, TimeoutError) or names & {
        "Timeout",
        "APITimeoutError",
        "TimeoutException",
    }:
        return LLMError(message, retryable=True, error_type=LLM_TIMEOUT, status=status or 408)

    if status is None:
        if isinstance(exc, ConnectionError) or names & {
            "APIConnectionError",
            "TransportError",
            "RemoteProtocolError",
            "APIError",
            "APIResponseValidationError",
        }:
            # Connection failures, a cut stream, an unparseable provider reply: the provider's fault.
            return LLMError(message, retryable=True, status=None)
        # Anything else is a bug on our side (or in litellm); retrying would only repeat it.
        return LLMError(message, retryable=False, status=None)

    return _from_status(message, status, headers)


def _from_status(message: str, status: int, headers: Mapping[str, str] | None) -> LLMError:
    retryable = status in (408, 409, 429) or status >= 500
    should_retry = (headers or {}).get("x-should-retry")
    if should_retry == "true":
        retryable = True
    elif should_retry == "false":
        retryable = False
    if status in (401, 403):
        error_type = LLM_AUTHENTICATION
    elif status == 429:
        error_type = LLM_RATE_LIMIT
    elif status == 408:
        error_type = LLM_TIMEOUT
    else:
        error_type = LLM_ERROR
    retry_after = parse_retry_after(headers) if retryable else None
    return LLMError(
        message, retryable=retryable, error_type=error_type, status=status, retry_after=retry_after
    )


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` (seconds or an HTTP date)."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _attr(obj: object, name: str) -> Any:
    # Some exception properties raise instead of returning None (httpx's `.request` when unset).
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _status(exc: BaseException) -> int | None:
    status = _attr(exc, "status_code")
    if status is None:
        status = _attr(_attr(exc, "response"), "status_code")
    try:
        return int(status) if status is not None else None
    except (TypeError, ValueError):
        return None


def _headers(exc: BaseException) -> Mapping[str, str] | None:
    # litellm keeps the provider's headers in one of three places depending on the path taken.
    for candidate in (
        _attr(exc, "litellm_response_headers"),
        _attr(exc, "headers"),
        _attr(_attr(exc, "response"), "headers"),
    ):
        if candidate:
            try:
                return {str(k).lower(): str(v) for k, v in dict(candidate).items()}
            except (TypeError, ValueError):
                continue
    return None


def _message(exc: BaseException) -> str:
    text = str(exc) or str(_attr(exc, "message") or "")
    return text or type(exc).__name__
