"""Remote embedders through litellm: OpenAI, any OpenAI-compatible server, Ollama.

litellm is imported on first use so that processes that only embed locally stay quick to import.
Retries are left to Temporal (`num_retries=0`): failures are raised as `EmbeddingError`, an
`LLMError` classified by `mnemo.llm.errors.classify`, so activities retry exactly the transient ones.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import SecretStr

from mnemo.config import Settings
from mnemo.embeddings.config import OPENAI_COMPATIBLE_TYPES, OPENAI_DEFAULT_ENDPOINT, EmbeddingConfig
from mnemo.llm.errors import LLMError, classify

# litellm fetches its price list from the network at import unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

DEFAULT_TIMEOUT = 60.0
# Placeholder for servers that need no key: it keeps litellm from falling back to the
# OPENAI_API_KEY environment variable and sending the operator's key to a client-chosen URL.
NO_KEY = "sk-no-key-required"


class EmbeddingError(LLMError):
    """An embedding call failed. `retryable`/`retry_after` come from `classify`; `__cause__` holds the
    provider's exception when there was one."""


def _same_url(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return a.rstrip("/") == b.rstrip("/")


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value else None


def api_key_for(config: EmbeddingConfig, settings: Settings) -> str | None:
    """The operator's OpenAI key goes only to the OpenAI endpoint the operator configured.

    An `embedding_config` arrives over the API, so its endpoint is chosen by the caller: sending the
    server's key there would hand it to whoever wrote the request.
    """
    if config.embedding_endpoint_type == "ollama":
        return None
    trusted = settings.openai_base_url or OPENAI_DEFAULT_ENDPOINT
    if _same_url(config.embedding_endpoint, trusted):
        return _secret(settings.openai_api_key) or NO_KEY
    return NO_KEY


def _litellm_model(config: EmbeddingConfig) -> str:
    if config.embedding_endpoint_type in OPENAI_COMPATIBLE_TYPES:
        return f"openai/{config.embedding_model}"
    if config.embedding_endpoint_type == "ollama":
        return f"ollama/{config.embedding_model}"
    raise ValueError(f"No remote embedder for embedding_endpoint_type {config.embedding_endpoint_type!r}.")


def _supports_dimensions(config: EmbeddingConfig) -> bool:
    # Only OpenAI's v3 models accept `dimensions`; other servers reject or ignore it.
    return config.embedding_endpoint_type in OPENAI_COMPATIBLE_TYPES and config.embedding_model.startswith(
        "text-embedding-3"
    )


def _vectors(response: Any) -> list[list[float]]:
    items = sorted(response.data, key=lambda item: item["index"])
    return [list(item["embedding"]) for item in items]


class LiteLLMEmbedder:
    """Embeds through `litellm.aembedding`, `batch_size` texts per request, batches sent in order."""

    def __init__(
        self, config: EmbeddingConfig, api_key: str | None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.config = config
        self.dim = config.embedding_dim
        self.batch_size = config.batch_size
        self._model = _litellm_model(config)
        self._api_key = api_key
        self._timeout = timeout

    async def _request(self, texts: list[str]) -> list[list[float]]:
        import litellm

        extra: dict[str, Any] = {}
        if _supports_dimensions(self.config):
            extra["dimensions"] = self.dim
        try:
            response = await litellm.aembedding(
                model=self._model,
                input=texts,
                api_base=self.config.embedding_endpoint,
                api_key=self._api_key,
                num_retries=0,
                timeout=self._timeout,
                **extra,
            )
        except Exception as exc:
            err = classify(exc)
            raise EmbeddingError(
                f"Embedding with {self._model} at {self.config.embedding_endpoint} failed: {err.message}",
                retryable=err.retryable,
                error_type=err.error_type,
                status=err.status,
                retry_after=err.retry_after,
            ) from exc
        vectors = _vectors(response)
        if len(vectors) != len(texts):
            raise EmbeddingError(
                f"{self._model} returned {len(vectors)} vectors for {len(texts)} inputs.", retryable=False
            )
        for vector in vectors:
            if len(vector) != self.dim:
                raise EmbeddingError(
                    f"{self._model} returned {len(vector)}-dim vectors but embedding_dim is {self.dim}: "
                    "fix embedding_dim in the embedding config.",
                    retryable=False,
                )
        return vectors

    async def embed_documents(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            out.extend(await self._request(texts[start : start + self.batch_size]))
        return out

    async def embed_query(self, text: str) -> list[float]:
        return (await self._request([text]))[0]
