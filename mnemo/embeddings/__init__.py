"""Embeddings: the offline local default and litellm-backed providers.

    config = resolve_embedding_config(embedding, embedding_config, get_settings())
    embedder = get_embedder(config)
    vectors = await embedder.embed_documents(["passage one", "passage two"])
    query = await embedder.embed_query("what was passage one about?")

Vectors keep their natural dimension (`config.embedding_dim`); the store's pgvector column is
unconstrained, with HNSW indexes for 384 and 1536 dims, so nothing is padded.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

from mnemo.config import Settings, get_settings
from mnemo.embeddings.config import (
    LOCAL_DIM,
    LOCAL_MODEL,
    SUPPORTED_PROVIDERS,
    EmbeddingConfig,
    config_from_handle,
    resolve_embedding_config,
)
from mnemo.embeddings.local import LocalE5Embedder
from mnemo.embeddings.remote import EmbeddingError, LiteLLMEmbedder, api_key_for


@runtime_checkable
class Embedder(Protocol):
    dim: int

    async def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    async def embed_query(self, text: str) -> list[float]: ...


_cache: dict[tuple[str, str | None], Embedder] = {}
_cache_lock = threading.Lock()


def get_embedder(config: EmbeddingConfig, settings: Settings | None = None) -> Embedder:
    """The embedder for `config`, one per distinct config (and key) per process."""
    local = config.embedding_endpoint_type == "local"
    api_key = None if local else api_key_for(config, settings or get_settings())
    key = (config.model_dump_json(), api_key)
    with _cache_lock:
        embedder = _cache.get(key)
        if embedder is None:
            embedder = (
                LocalE5Embedder(batch_size=config.batch_size)
                if local
                else LiteLLMEmbedder(config, api_key=api_key)
            )
            _cache[key] = embedder
        return embedder


__all__ = [
    "LOCAL_DIM",
    "LOCAL_MODEL",
    "SUPPORTED_PROVIDERS",
    "Embedder",
    "EmbeddingConfig",
    "EmbeddingError",
    "LiteLLMEmbedder",
    "LocalE5Embedder",
    "config_from_handle",
    "get_embedder",
    "resolve_embedding_config",
]
