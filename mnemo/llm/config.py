"""Letta's `llm_config` and model handles, resolved into litellm call parameters.

An agent names its model either by a handle (`"provider/model-name"`, Letta's `model` field) or by a
full `llm_config` whose `model_endpoint` may be any OpenAI-compatible base URL (Ollama, vLLM, LM
Studio, the test fake). The stored `LLMConfig` never holds credentials: keys are read from settings at
call time, so a config can be returned by the API and persisted as is.

litellm is imported lazily here so `LLMConfig` stays cheap to import from anywhere.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from mnemo.config import Settings

# Used when litellm's model map does not know the model (local and OpenAI-compatible servers, new
# releases). Letta's own fallback for unknown models is of the same order; a too-small window only
# makes compaction start early, a too-large one ends in a provider overflow error that also compacts.
DEFAULT_CONTEXT_WINDOW = 32000

OPENAI_BASE_URL = "https://api.openai.com/v1"
ANTHROPIC_BASE_URL = "https://api.anthropic.com/v1"
OLLAMA_BASE_URL = "http://localhost:11434"

# Endpoint types Letta uses for servers that speak the OpenAI chat-completions protocol: they all go
# through litellm's `openai/` provider with `api_base=model_endpoint`.
OPENAI_COMPATIBLE = frozenset(
    {
        "openai",
        "ollama",
        "vllm",
        "lmstudio",
        "lmstudio-chatcompletions",
        "lmstudio-legacy",
        "llamacpp",
        "koboldcpp",
        "webui",
        "webui-legacy",
    }
)

# Letta endpoint type → litellm provider prefix, for hosted providers litellm talks to natively.
LITELLM_PROVIDER = {
    "anthropic": "anthropic",
    "google_ai": "gemini",
    "google_vertex": "vertex_ai",
    "azure": "azure",
    "groq": "groq",
    "mistral": "mistral",
    "together": "together_ai",
    "bedrock": "bedrock",
    "deepseek": "deepseek",
    "xai": "xai",
    "openrouter": "openrouter",
    "fireworks": "fireworks_ai",
    "hugging-face": "huggingface",
}
_LETTA_NAME = {v: k for k, v in LITELLM_PROVIDER.items()}

MISSING_MODEL_MESSAGE = "Must specify either model or llm_config"


class LLMConfig(BaseModel):
    """Letta's `LLMConfig` wire shape. Unknown fields are kept so a client's config round-trips."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model: str
    model_endpoint_type: str
    model_endpoint: str | None = None
    provider_name: str | None = None
    provider_category: str | None = None
    model_wrapper: str | None = None
    context_window: int = DEFAULT_CONTEXT_WINDOW
    put_inner_thoughts_in_kwargs: bool | None = False
    handle: str | None = None
    temperature: float | None = 0.7
    max_tokens: int | None = None
    enable_reasoner: bool | None = False
    reasoning_effort: str | None = None
    max_reasoning_tokens: int | None = None
    frequency_penalty: float | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    strict: bool | None = None


def resolve_llm_config(model: str | None, llm_config: dict[str, Any] | None, settings: Settings) -> LLMConfig:
    """An agent's `LLMConfig` from Letta's `model` handle or `llm_config` (which wins when both are set).

    Neither given: `settings.default_model` (MNEMO_DEFAULT_MODEL), else Letta's ValueError.
    """
    if llm_config:
        return _from_llm_config(dict(llm_config))
    handle = model or settings.default_model
    if not handle:
        raise ValueError(MISSING_MODEL_MESSAGE)
    return _from_handle(handle, settings)


def _from_llm_config(data: dict[str, Any]) -> LLMConfig:
    if not data.get("model"):
        raise ValueError("llm_config.model is required")
    if not data.get("model_endpoint_type"):
        raise ValueError(
            "llm_config.model_endpoint_type is required (e.g. 'openai' for any OpenAI-compatible server)"
        )
    etype = data["model_endpoint_type"]
    if etype in OPENAI_COMPATIBLE and etype != "openai" and not data.get("model_endpoint"):
        raise ValueError(f"llm_config.model_endpoint is required for model_endpoint_type {etype!r}")
    if not data.get("context_window"):
        data["context_window"] = default_context_window(_info_model(etype, data["model"]))
    if not data.get("handle"):
        data["handle"] = f"{data.get('provider_name') or etype}/{data['model']}"
    return LLMConfig.model_validate(data)


def _from_handle(handle: str, settings: Settings) -> LLMConfig:
    provider, _, name = handle.partition("/")
    if not provider or not name:
        raise ValueError(
            f"Invalid model handle {handle!r}: expected 'provider/model-name', e.g. 'openai/gpt-4o-mini'"
        )
    endpoint: str | None
    if provider == "openai":
        etype, endpoint = "openai", settings.openai_base_url or OPENAI_BASE_URL
    elif provider == "anthropic":
        etype, endpoint = "anthropic", ANTHROPIC_BASE_URL
    elif provider == "ollama":
        etype, endpoint = "ollama", settings.ollama_base_url or OLLAMA_BASE_URL
    elif provider == "letta":
        raise ValueError(
            f"Model handle {handle!r} names Letta's hosted models, which Mnemo does not provide; "
            "use a provider handle such as 'openai/gpt-4o-mini' or 'ollama/llama3'"
        )
    elif provider in OPENAI_COMPATIBLE:
        raise ValueError(
            f"Model handle {handle!r}: no base URL is configured for provider {provider!r}; "
            "create the agent with an llm_config whose model_endpoint is the server's URL"
        )
    elif provider in LITELLM_PROVIDER:
        etype, endpoint = provider, None
    elif provider in _litellm_providers():
        etype, endpoint = _LETTA_NAME.get(provider, provider), None
    else:
        raise ValueError(f"Unknown provider {provider!r} in model handle {handle!r}")
    return LLMConfig(
        model=name,
        model_endpoint_type=etype,
        model_endpoint=endpoint,
        provider_name=provider,
        provider_category="base",
        handle=handle,
        context_window=default_context_window(_info_model(etype, name)),
    )


def litellm_model(config: LLMConfig) -> str:
    """The provider-prefixed model string litellm routes on."""
    etype = config.model_endpoint_type
    if etype in OPENAI_COMPATIBLE:
        return f"openai/{config.model}"
    return f"{LITELLM_PROVIDER.get(etype, etype)}/{config.model}"


def litellm_params(config: LLMConfig, settings: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments for `litellm.acompletion` (model, endpoint, key, sampling), without messages."""
    if settings is None:
        from mnemo.config import get_settings

        settings = get_settings()
    etype = config.model_endpoint_type
    params: dict[str, Any] = {"model": litellm_model(config)}
    if etype in OPENAI_COMPATIBLE:
        base = config.model_endpoint or settings.openai_base_url or OPENAI_BASE_URL
        if etype == "ollama":
            base = _ollama_openai_base(base)
        params["api_base"] = base
        params["api_key"] = _openai_compatible_key(base, settings)
    elif etype == "anthropic":
        if config.model_endpoint and _norm(config.model_endpoint) != _norm(ANTHROPIC_BASE_URL):
            params["api_base"] = config.model_endpoint
        if settings.anthropic_api_key is not None:
            params["api_key"] = settings.anthropic_api_key.get_secret_value()
    # Other hosted providers: litellm reads their default URL and `<PROVIDER>_API_KEY` itself.

    if config.temperature is not None:
        params["temperature"] = config.temperature
    if config.max_tokens is not None:
        params["max_tokens"] = config.max_tokens
    if config.frequency_penalty is not None:
        params["frequency_penalty"] = config.frequency_penalty
    if config.response_format is not None:
        params["response_format"] = config.response_format
    if config.reasoning_effort is not None:
        params["reasoning_effort"] = config.reasoning_effort
    if config.enable_reasoner and config.max_reasoning_tokens and etype == "anthropic":
        params["thinking"] = {"type": "enabled", "budget_tokens": config.max_reasoning_tokens}
    return params


def default_context_window(model: str) -> int:
    """The model's input window from litellm's (local) model map, else DEFAULT_CONTEXT_WINDOW."""
    litellm = _litellm()
    try:
        info = litellm.get_model_info(model=model)
    except Exception:
        # get_model_info raises for models its map does not know; that is the expected case for
        # local servers, not an error.
        return DEFAULT_CONTEXT_WINDOW
    window = info.get("max_input_tokens") or info.get("max_tokens")
    return int(window) if window else DEFAULT_CONTEXT_WINDOW


def _info_model(etype: str, model: str) -> str:
    if etype == "ollama":
        return f"ollama/{model}"
    if etype in OPENAI_COMPATIBLE:
        return f"openai/{model}"
    return f"{LITELLM_PROVIDER.get(etype, etype)}/{model}"


def _openai_compatible_key(base: str, settings: Settings) -> str:
    # The OpenAI key only goes to OpenAI's own endpoint or the configured OPENAI_BASE_URL: sending it
    # to an arbitrary llm_config endpoint would leak it. Local servers ignore the key, but the OpenAI
    # SDK refuses to send a request without one.
    official = {_norm(OPENAI_BASE_URL)}
    if settings.openai_base_url:
        official.add(_norm(settings.openai_base_url))
    if settings.openai_api_key is not None and _norm(base) in official:
        return settings.openai_api_key.get_secret_value()
    return "not-needed"


def _ollama_openai_base(base: str) -> str:
    # Letta stores Ollama's root URL; its OpenAI-compatible API lives under /v1.
    trimmed = base.rstrip("/")
    return trimmed if trimmed.endswith("/v1") else f"{trimmed}/v1"


def _norm(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def _litellm_providers() -> set[str]:
    return {str(getattr(p, "value", p)) for p in _litellm().provider_list}


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm
