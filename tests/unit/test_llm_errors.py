"""The offline parts of the LLM adapter: error classification, config resolution, tool-call argument
parsing and token counting. Errors are litellm's real exception classes, built as litellm builds them."""

from __future__ import annotations

import os
import pickle
from email.utils import formatdate
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx
import litellm
import pytest

from mnemo.config import Settings
from mnemo.llm.client import ToolCall, parse_arguments
from mnemo.llm.config import (
    DEFAULT_CONTEXT_WINDOW,
    MISSING_MODEL_MESSAGE,
    LLMConfig,
    litellm_params,
    resolve_llm_config,
)
from mnemo.llm.errors import (
    LLM_AUTHENTICATION,
    LLM_ERROR,
    LLM_RATE_LIMIT,
    LLM_TIMEOUT,
    ContextWindowExceeded,
    InvalidToolCallArguments,
    LLMError,
    classify,
    parse_retry_after,
)
from mnemo.llm.tokens import context_window, count_tokens, estimate_tokens

PROVIDER: dict[str, Any] = {"llm_provider": "openai", "model": "gpt-4o-mini"}


def response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, headers=headers, request=httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    )


def settings(**values: object) -> Settings:
    base: dict[str, object] = {
        "default_model": None,
        "openai_api_key": None,
        "openai_base_url": None,
        "anthropic_api_key": None,
        "ollama_base_url": None,
    }
    base.update(values)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg, arg-type]


# --- classify: litellm's classes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "retryable", "error_type", "status"),
    [
        (litellm.AuthenticationError("bad key", **PROVIDER), False, LLM_AUTHENTICATION, 401),
        (
            litellm.PermissionDeniedError("no", response=response(403), **PROVIDER),
            False,
            LLM_AUTHENTICATION,
            403,
        ),
        (litellm.NotFoundError("no such model", **PROVIDER), False, LLM_ERROR, 404),
        (litellm.BadRequestError("bad field", **PROVIDER), False, LLM_ERROR, 400),
        (litellm.UnprocessableEntityError("bad", response=response(422), **PROVIDER), False, LLM_ERROR, 422),
        (litellm.RateLimitError("slow down", **PROVIDER), True, LLM_RATE_LIMIT, 429),
        (litellm.Timeout("took too long", **PROVIDER), True, LLM_TIMEOUT, 408),
        (litellm.InternalServerError("boom", **PROVIDER), True, LLM_ERROR, 500),
        (litellm.ServiceUnavailableError("down", **PROVIDER), True, LLM_ERROR, 503),
        (litellm.BadGatewayError("gateway", **PROVIDER), True, LLM_ERROR, 502),
        (litellm.APIConnectionError("refused", **PROVIDER), True, LLM_ERROR, 500),
        (litellm.APIError(409, "conflict", **PROVIDER), True, LLM_ERROR, 409),
        (litellm.APIError(529, "overloaded", **PROVIDER), True, LLM_ERROR, 529),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_litellm_exceptions_map_by_status(
    exc: BaseException, retryable: bool, error_type: str, status: int
) -> None:
    err = classify(exc)
    assert type(err) is LLMError
    assert (err.retryable, err.error_type, err.status) == (retryable, error_type, status)
    assert err.message == str(exc)


def test_context_window_error_class_is_context_window_exceeded() -> None:
    err = classify(litellm.ContextWindowExceededError("prompt too long", **PROVIDER))
    assert isinstance(err, ContextWindowExceeded)
    assert err.retryable is False
    assert err.status == 400


def test_plain_400_about_context_length_is_context_window_exceeded() -> None:
    msg = "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens."
    err = classify(litellm.BadRequestError(msg, **PROVIDER))
    assert isinstance(err, ContextWindowExceeded)
    assert "8192" in err.message


def test_plain_400_about_something_else_is_not_context_window_exceeded() -> None:
    err = classify(litellm.BadRequestError("temperature must be at most 2", **PROVIDER))
    assert not isinstance(err, ContextWindowExceeded)
    assert err.retryable is False


def test_rate_limit_retry_after_from_provider_headers() -> None:
    exc = litellm.RateLimitError("slow down", response=response(429, {"Retry-After": "7"}), **PROVIDER)
    err = classify(exc)
    assert err.retryable and err.error_type == LLM_RATE_LIMIT
    assert err.retry_after == 7.0


def test_retry_after_from_litellm_response_headers_attribute() -> None:
    # litellm's exception mapping hangs the provider's headers here, not on `response`.
    exc = litellm.ServiceUnavailableError("down", **PROVIDER)
    exc.litellm_response_headers = httpx.Headers({"retry-after-ms": "1500"})  # type: ignore[attr-defined]
    assert classify(exc).retry_after == 1.5


def test_non_retryable_errors_carry_no_retry_after() -> None:
    exc = litellm.BadRequestError("bad", response=response(400, {"retry-after": "5"}), **PROVIDER)
    assert classify(exc).retry_after is None


def test_x_should_retry_header_overrides_status() -> None:
    exc = litellm.InternalServerError("boom", **PROVIDER)
    exc.litellm_response_headers = httpx.Headers({"x-should-retry": "false"})  # type: ignore[attr-defined]
    assert classify(exc).retryable is False


# --- classify: non-litellm exceptions -----------------------------------------------------------


def test_builtin_timeout_and_connection_errors_are_retryable() -> None:
    timeout = classify(TimeoutError("no answer"))
    assert (timeout.retryable, timeout.error_type) == (True, LLM_TIMEOUT)
    conn = classify(ConnectionResetError("reset by peer"))
    assert (conn.retryable, conn.error_type) == (True, LLM_ERROR)


def test_httpx_transport_errors_are_retryable() -> None:
    assert classify(httpx.ReadTimeout("slow")).error_type == LLM_TIMEOUT
    assert classify(httpx.RemoteProtocolError("peer closed connection")).retryable is True


def test_programming_errors_are_not_retryable() -> None:
    err = classify(KeyError("choices"))
    assert err.retryable is False
    assert "choices" in err.message


def test_llm_error_passes_through_unchanged() -> None:
    original = LLMError("already classified", retryable=True, error_type=LLM_RATE_LIMIT, retry_after=2.0)
    assert classify(original) is original


def test_llm_errors_survive_pickling() -> None:
    err = LLMError("x", retryable=True, error_type=LLM_RATE_LIMIT, status=429, retry_after=3.0)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.message, copy.retryable, copy.error_type, copy.status, copy.retry_after) == (
        "x",
        True,
        LLM_RATE_LIMIT,
        429,
        3.0,
    )
    overflow = pickle.loads(pickle.dumps(ContextWindowExceeded("too long")))
    assert isinstance(overflow, ContextWindowExceeded) and overflow.retryable is False


# --- retry-after parsing ------------------------------------------------------------------------


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.25"}) == 0.25
    assert parse_retry_after({"Retry-After-Ms": "250", "Retry-After": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "-4"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after(None) is None


def test_parse_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    date = formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == pytest.approx(30.0)
    past = formatdate(now - 30, usegmt=True)
    assert parse_retry_after({"retry-after": past}, now=now) == 0.0


# --- tool call arguments ------------------------------------------------------------------------


def test_parse_arguments_valid_and_empty() -> None:
    assert parse_arguments(ToolCall(id="c1", name="f", arguments='{"a": 1}')) == {"a": 1}
    assert parse_arguments(ToolCall(id="c2", name="f", arguments="")) == {}


def test_parse_arguments_invalid_json_names_the_tool() -> None:
    with pytest.raises(InvalidToolCallArguments) as info:
        parse_arguments(ToolCall(id="call_9", name="memory_insert", arguments='{"label": '))
    assert "memory_insert" in str(info.value) and "call_9" in str(info.value)
    assert "not valid JSON" in str(info.value)
    assert info.value.raw == '{"label": '


def test_parse_arguments_rejects_non_objects() -> None:
    with pytest.raises(InvalidToolCallArguments, match="expected a JSON object, got list"):
        parse_arguments(ToolCall(id="c", name="f", arguments="[1, 2]"))


# --- config resolution --------------------------------------------------------------------------


def test_openai_handle() -> None:
    config = resolve_llm_config("openai/gpt-4o-mini", None, settings())
    assert (config.model, config.model_endpoint_type, config.handle) == (
        "gpt-4o-mini",
        "openai",
        "openai/gpt-4o-mini",
    )
    assert config.model_endpoint == "https://api.openai.com/v1"
    assert config.context_window == litellm.get_model_info("openai/gpt-4o-mini")["max_input_tokens"]


def test_openai_handle_uses_openai_base_url() -> None:
    config = resolve_llm_config("openai/my-model", None, settings(openai_base_url="http://127.0.0.1:9/v1"))
    assert config.model_endpoint == "http://127.0.0.1:9/v1"
    assert config.context_window == DEFAULT_CONTEXT_WINDOW


def test_anthropic_and_ollama_handles() -> None:
    claude = resolve_llm_config("anthropic/claude-sonnet-4-20250514", None, settings())
    assert claude.model_endpoint_type == "anthropic"
    assert claude.context_window == litellm.get_model_info("claude-sonnet-4-20250514")["max_input_tokens"]
    llama = resolve_llm_config("ollama/llama3", None, settings(ollama_base_url="http://127.0.0.1:11500"))
    assert (llama.model_endpoint_type, llama.model_endpoint) == ("ollama", "http://127.0.0.1:11500")
    assert llama.context_window == litellm.get_model_info("ollama/llama3")["max_input_tokens"]


def test_model_names_may_contain_slashes() -> None:
    config = resolve_llm_config("openrouter/meta-llama/llama-3-70b", None, settings())
    assert (config.model_endpoint_type, config.model) == ("openrouter", "meta-llama/llama-3-70b")
    assert litellm_params(config, settings())["model"] == "openrouter/meta-llama/llama-3-70b"


def test_litellm_provider_names_map_to_letta_endpoint_types() -> None:
    config = resolve_llm_config("gemini/gemini-2.0-flash", None, settings())
    assert config.model_endpoint_type == "google_ai"
    assert litellm_params(config, settings())["model"] == "gemini/gemini-2.0-flash"


def test_default_model_when_neither_given() -> None:
    config = resolve_llm_config(None, None, settings(default_model="openai/gpt-4o-mini"))
    assert config.handle == "openai/gpt-4o-mini"


def test_neither_model_nor_llm_config_is_lettas_error() -> None:
    with pytest.raises(ValueError, match=f"^{MISSING_MODEL_MESSAGE}$"):
        resolve_llm_config(None, None, settings())


@pytest.mark.parametrize("handle", ["gpt-4o-mini", "/gpt-4o", "openai/"])
def test_malformed_handle(handle: str) -> None:
    with pytest.raises(ValueError, match="expected 'provider/model-name'"):
        resolve_llm_config(handle, None, settings())


def test_unknown_and_unsupported_providers() -> None:
    with pytest.raises(ValueError, match="Unknown provider 'nosuch'"):
        resolve_llm_config("nosuch/model", None, settings())
    with pytest.raises(ValueError, match="does not provide"):
        resolve_llm_config("letta/letta-free", None, settings())
    with pytest.raises(ValueError, match="model_endpoint"):
        resolve_llm_config("vllm/qwen", None, settings())


def test_llm_config_wins_and_keeps_unknown_fields() -> None:
    raw = {
        "model": "qwen2.5",
        "model_endpoint_type": "openai",
        "model_endpoint": "http://127.0.0.1:8000/v1",
        "context_window": 16384,
        "temperature": 0.1,
        "display_name": "Qwen",
    }
    config = resolve_llm_config("openai/gpt-4o", raw, settings())
    assert (config.model, config.context_window, config.temperature) == ("qwen2.5", 16384, 0.1)
    assert config.handle == "openai/qwen2.5"
    dumped = config.model_dump()
    assert dumped["display_name"] == "Qwen"
    assert LLMConfig.model_validate(dumped) == config


def test_llm_config_without_context_window_gets_a_default() -> None:
    raw = {
        "model": "unknown-local",
        "model_endpoint_type": "openai",
        "model_endpoint": "http://127.0.0.1:1/v1",
    }
    assert resolve_llm_config(None, raw, settings()).context_window == DEFAULT_CONTEXT_WINDOW


def test_llm_config_needs_endpoint_type() -> None:
    with pytest.raises(ValueError, match="model_endpoint_type"):
        resolve_llm_config(None, {"model": "x"}, settings())
    with pytest.raises(ValueError, match="model_endpoint is required"):
        resolve_llm_config(None, {"model": "x", "model_endpoint_type": "vllm"}, settings())


# --- litellm parameters -------------------------------------------------------------------------


def test_openai_compatible_endpoint_params() -> None:
    config = LLMConfig(
        model="fake",
        model_endpoint_type="openai",
        model_endpoint="http://127.0.0.1:8299/v1",
        temperature=0.2,
        max_tokens=256,
    )
    params = litellm_params(config, settings(openai_api_key="sk-real"))
    assert params == {
        "model": "openai/fake",
        "api_base": "http://127.0.0.1:8299/v1",
        "api_key": "not-needed",  # the real OpenAI key never goes to a foreign endpoint
        "temperature": 0.2,
        "max_tokens": 256,
    }


def test_openai_key_goes_to_openai() -> None:
    config = resolve_llm_config("openai/gpt-4o-mini", None, settings(openai_api_key="sk-real"))
    params = litellm_params(config, settings(openai_api_key="sk-real"))
    assert params["api_key"] == "sk-real"
    assert params["api_base"] == "https://api.openai.com/v1"


def test_ollama_params_use_its_openai_api() -> None:
    config = resolve_llm_config("ollama/llama3", None, settings())
    params = litellm_params(config, settings())
    assert (params["model"], params["api_base"]) == ("openai/llama3", "http://localhost:11434/v1")


def test_anthropic_params_and_reasoning() -> None:
    config = resolve_llm_config("anthropic/claude-sonnet-4-20250514", None, settings())
    config = config.model_copy(
        update={"enable_reasoner": True, "max_reasoning_tokens": 2048, "max_tokens": 8000}
    )
    params = litellm_params(config, settings(anthropic_api_key="sk-ant"))
    assert params["model"] == "anthropic/claude-sonnet-4-20250514"
    assert params["api_key"] == "sk-ant"
    assert "api_base" not in params  # litellm's own default URL
    assert params["thinking"] == {"type": "enabled", "budget_tokens": 2048}


# --- tokens -------------------------------------------------------------------------------------


def test_count_tokens_grows_with_content_and_tools() -> None:
    config = resolve_llm_config("openai/gpt-4o-mini", None, settings())
    short = count_tokens(config, [{"role": "user", "content": "hello"}])
    long = count_tokens(config, [{"role": "user", "content": "hello " * 200}])
    tool = {
        "type": "function",
        "function": {
            "name": "memory_insert",
            "description": "Insert text into a memory block.",
            "parameters": {"type": "object", "properties": {"label": {"type": "string"}}},
        },
    }
    with_tools = count_tokens(config, [{"role": "user", "content": "hello"}], [tool])
    assert 0 < short < long
    assert with_tools > short
    assert 150 < long < 300  # "hello " is about one token each


def test_count_tokens_for_unknown_local_model() -> None:
    config = LLMConfig(model="my-local", model_endpoint_type="openai", model_endpoint="http://127.0.0.1:1/v1")
    assert count_tokens(config, [{"role": "user", "content": "hello " * 100}]) > 50


def test_estimate_tokens_is_bytes_over_four() -> None:
    messages = [{"role": "user", "content": "x" * 400}]
    assert estimate_tokens(messages) == (len('[{"role": "user", "content": "' + "x" * 400 + '"}]') + 3) // 4


def test_context_window() -> None:
    config = LLMConfig(model="m", model_endpoint_type="openai", context_window=12345)
    assert context_window(config) == 12345
    assert context_window(config.model_copy(update={"context_window": 0})) == DEFAULT_CONTEXT_WINDOW
