"""Models (`/v1/models`): the chat and embedding models an agent can be created with.

Letta asks each configured provider's API for its model list. Mnemo answers offline and the same way
every time, from what it can vouch for without a network call:

- the default model (`MNEMO_DEFAULT_MODEL`) and default embedding (`MNEMO_DEFAULT_EMBEDDING`);
- for each hosted provider whose key is configured (OPENAI_API_KEY, ANTHROPIC_API_KEY), the chat
  models with tool calling that litellm's bundled model map knows for it (agents always send tools);
  for embeddings, OpenAI's text-embedding-3 models;
- the bundled local embedder, which needs nothing;
- the models existing agents use, so a server a user configured by hand (Ollama, vLLM, any
  OpenAI-compatible endpoint) is listed as well.

Each entry is resolved with the same function agent creation uses, so its shape is exactly what an
agent created with that handle gets. Entries are de-duplicated by handle, the first one winning.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cache
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from pydantic import ValidationError
from sqlmodel import select

from api.deps import Services, get_services
from mnemo.config import Settings
from mnemo.embeddings.config import LOCAL_MODEL, EmbeddingConfig, resolve_embedding_config
from mnemo.llm.config import LLMConfig, resolve_llm_config
from mnemo.store.tables import AgentRow

router = APIRouter(prefix="/models", tags=["models"])

ProviderCategory = Literal["base", "byok"]
ProviderType = Literal[
    "anthropic", "azure", "baseten", "bedrock", "cerebras", "chatgpt_oauth", "deepseek", "fireworks",
    "google_ai", "google_vertex", "groq", "hugging-face", "letta", "lmstudio_openai", "minimax",
    "moonshot", "moonshot_coding", "mistral", "ollama", "openai", "together", "vllm", "sglang",
    "openrouter", "xai", "zai", "zai_coding",
]  # fmt: skip

OPENAI_EMBEDDINGS = ("text-embedding-3-small", "text-embedding-3-large")


@cache
def provider_chat_models(provider: str) -> tuple[str, ...]:
    """Chat models with tool calling that litellm's local model map lists for `provider`."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return tuple(
        sorted(
            name
            for name, info in litellm.model_cost.items()
            if info.get("litellm_provider") == provider
            and info.get("mode") == "chat"
            and info.get("supports_function_calling")
            and "/" not in name  # provider-prefixed aliases of entries listed anyway
        )
    )


def _try(resolve: Any, *args: Any) -> Any | None:
    # One unresolvable entry (a default handle that names an unknown provider) must not take the
    # whole list down; agent creation reports that handle's error where it matters.
    try:
        return resolve(*args)
    except (ValueError, ValidationError):
        return None


def _by_handle(items: Iterable[Any]) -> list[Any]:
    seen: dict[str, Any] = {}
    for item in items:
        if item is not None and item.handle not in seen:
            seen[item.handle] = item
    return list(seen.values())


def llm_configs(settings: Settings, agent_configs: Iterable[dict[str, Any]]) -> list[LLMConfig]:
    handles: list[str] = [settings.default_model] if settings.default_model else []
    if settings.openai_api_key is not None:
        handles += [f"openai/{m}" for m in provider_chat_models("openai")]
    if settings.anthropic_api_key is not None:
        handles += [f"anthropic/{m}" for m in provider_chat_models("anthropic")]
    configured = [_try(resolve_llm_config, h, None, settings) for h in handles]
    used = [_try(resolve_llm_config, None, c, settings) for c in agent_configs if c]
    return _by_handle([*configured, *used])


def embedding_configs(settings: Settings, agent_configs: Iterable[dict[str, Any]]) -> list[EmbeddingConfig]:
    handles = [settings.default_embedding, f"local/{LOCAL_MODEL}"]
    if settings.openai_api_key is not None:
        handles += [f"openai/{m}" for m in OPENAI_EMBEDDINGS]
    configured = [_try(resolve_embedding_config, h, None, settings) for h in handles]
    used = [_try(resolve_embedding_config, None, c, settings) for c in agent_configs if c]
    return _by_handle([*configured, *used])


def model(config: LLMConfig) -> dict[str, Any]:
    """Letta's `Model`: the `LLMConfig` fields plus the newer names for them."""
    data = config.model_dump()
    etype = config.model_endpoint_type
    return {
        **data,
        "handle": config.handle or f"{config.provider_name}/{config.model}",
        "name": config.model,
        "display_name": data.get("display_name") or config.model,
        "provider_type": etype,
        "provider_name": config.provider_name or etype,
        "provider_category": config.provider_category or "base",
        "model_type": "llm",
        "max_context_window": config.context_window,
    }


def embedding_model(config: EmbeddingConfig) -> dict[str, Any]:
    """Letta's `EmbeddingModel`: the `EmbeddingConfig` fields plus the newer names for them."""
    etype = config.embedding_endpoint_type
    return {
        **config.model_dump(),
        "handle": config.handle or f"{etype}/{config.embedding_model}",
        "name": config.embedding_model,
        "display_name": config.embedding_model,
        "provider_type": etype,
        "provider_name": etype,
        "model_type": "embedding",
    }


def _distinct(column: Any) -> Any:
    # Oldest first, so the list keeps its order as agents are added.
    return select(column).group_by(column).order_by(sa.func.min(AgentRow.created_at))


@router.get("/", summary="List the chat models agents can use")
async def list_models(
    provider_category: list[ProviderCategory] | None = Query(default=None),
    provider_name: str | None = None,
    provider_type: ProviderType | None = None,
    services: Services = Depends(get_services),
) -> list[dict[str, Any]]:
    async with services.db.session() as s:
        used = (await s.exec(_distinct(AgentRow.llm_config))).all()
    models = [model(c) for c in llm_configs(services.settings, used)]
    return [
        m
        for m in models
        if (not provider_category or m["provider_category"] in provider_category)
        and (provider_name is None or m["provider_name"] == provider_name)
        and (provider_type is None or m["provider_type"] == provider_type)
    ]


@router.get("/embedding", summary="List the embedding models agents can use")
async def list_embedding_models(services: Services = Depends(get_services)) -> list[dict[str, Any]]:
    async with services.db.session() as s:
        used = (await s.exec(_distinct(AgentRow.embedding_config))).all()
    return [embedding_model(c) for c in embedding_configs(services.settings, used)]
