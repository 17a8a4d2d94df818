"""Embedding configuration: Letta's `EmbeddingConfig` and the rules that turn a handle into one.

A handle is `"provider/model"`. The providers are:

- `local/multilingual-e5-small`: the bundled, offline default (384 dims).
- `openai/<model>`: OpenAI, or `OPENAI_BASE_URL` when set, through litellm.
- `ollama/<model>`: an Ollama server at `OLLAMA_BASE_URL`, through litellm.

Any other OpenAI-compatible server is reached with a full `embedding_config`
(`embedding_endpoint_type="openai"` and `embedding_endpoint=<base URL>`).

Vectors are stored at their natural dimension: the passage column is an unconstrained pgvector
`vector` next to an `embedding_dim` column, with partial HNSW indexes for 384 and 1536 dims. Nothing is
padded, and vectors of other sizes are still stored, but searched without an index.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mnemo.config import Settings

LOCAL_MODEL = "multilingual-e5-small"
LOCAL_DIM = 384
DEFAULT_BATCH_SIZE = 32
OPENAI_DEFAULT_ENDPOINT = "https://api.openai.com/v1"

# Dimensions of well-known models, so a bare handle resolves without asking the provider.
OPENAI_DIMS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
OLLAMA_DIMS: dict[str, int] = {
    "nomic-embed-text": 768,
    "mxbai-embed-large": 1024,
    "all-minilm": 384,
    "snowflake-arctic-embed": 1024,
    "bge-m3": 1024,
    "bge-large": 1024,
}

SUPPORTED_PROVIDERS = ("local", "openai", "ollama")
# Letta endpoint types that speak OpenAI's /v1/embeddings; they need an explicit endpoint.
OPENAI_COMPATIBLE_TYPES = frozenset({"openai", "vllm", "lmstudio", "lmstudio-openai", "llamacpp"})


class EmbeddingConfig(BaseModel):
    """Letta's `EmbeddingConfig` wire model; unknown Letta fields (azure_*, ...) are kept as they are."""

    model_config = ConfigDict(extra="allow")

    embedding_endpoint_type: str
    embedding_endpoint: str | None = None
    embedding_model: str
    embedding_dim: int = Field(gt=0)
    embedding_chunk_size: int | None = 300
    handle: str | None = None
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1)


def _supported_message() -> str:
    return (
        "supported embedding providers are "
        + ", ".join(f"'{p}/'" for p in SUPPORTED_PROVIDERS)
        + " (e.g. 'local/multilingual-e5-small', 'openai/text-embedding-3-small', 'ollama/nomic-embed-text'),"
        " or an embedding_config with embedding_endpoint_type 'openai' and an embedding_endpoint"
    )


def _reject_letta_hosted(model: str, endpoint: str | None) -> None:
    if model == "letta-free" or (endpoint and "letta.com" in endpoint):
        raise ValueError(
            "Letta's hosted embeddings ('letta/letta-free') are not supported: Mnemo runs offline. "
            f"Use the default 'local/{LOCAL_MODEL}' or another provider; {_supported_message()}."
        )


def config_from_handle(handle: str, settings: Settings) -> EmbeddingConfig:
    provider, sep, model = handle.partition("/")
    if not sep or not provider or not model:
        raise ValueError(
            f"Embedding handle {handle!r} must look like 'provider/model'; {_supported_message()}."
        )
    if provider == "letta":
        _reject_letta_hosted("letta-free", None)
    if provider == "local":
        if model != LOCAL_MODEL:
            raise ValueError(
                f"Unknown local embedding model {model!r}: the only local model is {LOCAL_MODEL!r}."
            )
        return EmbeddingConfig(
            embedding_endpoint_type="local",
            embedding_model=LOCAL_MODEL,
            embedding_dim=LOCAL_DIM,
            handle=handle,
        )
    if provider == "openai":
        dim = OPENAI_DIMS.get(model)
        if dim is None:
            raise ValueError(
                f"Unknown OpenAI embedding model {model!r} (known: {', '.join(OPENAI_DIMS)}); "
                "pass an embedding_config with embedding_dim for other models."
            )
        return EmbeddingConfig(
            embedding_endpoint_type="openai",
            embedding_endpoint=settings.openai_base_url or OPENAI_DEFAULT_ENDPOINT,
            embedding_model=model,
            embedding_dim=dim,
            handle=handle,
        )
    if provider == "ollama":
        if not settings.ollama_base_url:
            raise ValueError(f"Embedding handle {handle!r} needs OLLAMA_BASE_URL to be set.")
        dim = OLLAMA_DIMS.get(model.split(":", 1)[0])
        if dim is None:
            raise ValueError(
                f"Unknown Ollama embedding model {model!r} (known: {', '.join(OLLAMA_DIMS)}); "
                "pass an embedding_config with embedding_dim for other models."
            )
        return EmbeddingConfig(
            embedding_endpoint_type="ollama",
            embedding_endpoint=settings.ollama_base_url,
            embedding_model=model,
            embedding_dim=dim,
            handle=handle,
        )
    raise ValueError(f"Unknown embedding provider {provider!r} in handle {handle!r}; {_supported_message()}.")


def _validate(config: EmbeddingConfig, settings: Settings) -> EmbeddingConfig:
    kind = config.embedding_endpoint_type
    _reject_letta_hosted(config.embedding_model, config.embedding_endpoint)
    if kind == "local":
        if config.embedding_model != LOCAL_MODEL or config.embedding_dim != LOCAL_DIM:
            raise ValueError(
                f"The local embedder is {LOCAL_MODEL!r} with {LOCAL_DIM} dims, not "
                f"{config.embedding_model!r} with {config.embedding_dim}."
            )
        return config
    if kind in OPENAI_COMPATIBLE_TYPES:
        if kind != "openai" and not config.embedding_endpoint:
            raise ValueError(f"embedding_endpoint_type {kind!r} needs an embedding_endpoint (base URL).")
        if not config.embedding_endpoint:
            config = config.model_copy(
                update={"embedding_endpoint": settings.openai_base_url or OPENAI_DEFAULT_ENDPOINT}
            )
        return config
    if kind == "ollama":
        if not config.embedding_endpoint:
            if not settings.ollama_base_url:
                raise ValueError("An ollama embedding_config needs embedding_endpoint or OLLAMA_BASE_URL.")
            config = config.model_copy(update={"embedding_endpoint": settings.ollama_base_url})
        return config
    raise ValueError(f"Unsupported embedding_endpoint_type {kind!r}; {_supported_message()}.")


def resolve_embedding_config(
    embedding: str | None, embedding_config: dict[str, Any] | None, settings: Settings
) -> EmbeddingConfig:
    """The config for an agent, archive or folder, as Letta resolves it.

    An explicit `embedding_config` wins over the handle (Letta's order). A config that carries only a
    `handle` (plus overrides such as `batch_size`) is completed from that handle. With neither,
    `settings.default_embedding` is used.
    """
    if embedding_config:
        given = {k: v for k, v in embedding_config.items() if v is not None}
        handle = given.get("handle")
        if isinstance(handle, str) and not {"embedding_endpoint_type", "embedding_model"} <= given.keys():
            given = {**config_from_handle(handle, settings).model_dump(), **given}
        return _validate(EmbeddingConfig.model_validate(given), settings)
    return _validate(config_from_handle(embedding or settings.default_embedding, settings), settings)
