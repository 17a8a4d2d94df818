"""litellm-backed embedders against the real fake OpenAI-compatible server (`/v1/embeddings`)."""

from __future__ import annotations

import math
import socket
from typing import Any

import pytest
from pydantic import SecretStr

from mnemo.config import Settings
from mnemo.embeddings import EmbeddingError, LiteLLMEmbedder, get_embedder, resolve_embedding_config
from mnemo.embeddings.remote import NO_KEY, api_key_for
from mnemo.fakellm import FakeLLM
from mnemo.llm.errors import LLMError

TEXTS = [f"memory number {i}: the user said something different each time ({i * i})" for i in range(10)]


def _settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {"openai_base_url": None, "openai_api_key": None, "ollama_base_url": None}
    return Settings(**{"_env_file": None, **base, **overrides})


def _compatible(fake: FakeLLM, model: str, dim: int, batch_size: int = 32) -> dict[str, object]:
    return {
        "embedding_endpoint_type": "openai",
        "embedding_endpoint": fake.base_url,
        "embedding_model": model,
        "embedding_dim": dim,
        "batch_size": batch_size,
    }


async def test_openai_handle_batches_requests_by_batch_size(fake_llm: FakeLLM) -> None:
    settings = _settings(openai_base_url=fake_llm.base_url, openai_api_key=SecretStr("sk-test"))
    config = resolve_embedding_config(
        None, {"handle": "openai/text-embedding-3-small", "batch_size": 4}, settings
    )
    assert (config.embedding_dim, config.embedding_endpoint) == (1536, fake_llm.base_url)
    embedder = get_embedder(config, settings)
    assert isinstance(embedder, LiteLLMEmbedder) and embedder.dim == 1536

    vectors = await embedder.embed_documents(TEXTS)

    requests = fake_llm.embedding_requests
    assert [r["input"] for r in requests] == [TEXTS[0:4], TEXTS[4:8], TEXTS[8:10]]
    assert {r["model"] for r in requests} == {"text-embedding-3-small"}
    assert {r["dimensions"] for r in requests} == {1536}
    assert len(vectors) == len(TEXTS)
    assert all(len(v) == 1536 for v in vectors)
    assert math.isclose(sum(x * x for x in vectors[0]), 1.0, abs_tol=1e-4)
    # Order is kept across batches: embedding one text alone gives the vector at its position.
    assert await embedder.embed_query(TEXTS[6]) == vectors[6]
    assert len(set(map(tuple, vectors))) == len(TEXTS)


async def test_default_batch_size_is_32(fake_llm: FakeLLM) -> None:
    config = resolve_embedding_config(None, _compatible(fake_llm, "text-embedding-3-small", 64), _settings())
    assert config.batch_size == 32
    embedder = get_embedder(config, _settings())
    vectors = await embedder.embed_documents([f"text {i}" for i in range(70)])
    assert [len(r["input"]) for r in fake_llm.embedding_requests] == [32, 32, 6]
    assert len(vectors) == 70 and all(len(v) == 64 for v in vectors)


async def test_dims_follow_the_config(fake_llm: FakeLLM) -> None:
    config = resolve_embedding_config(None, _compatible(fake_llm, "text-embedding-3-small", 256), _settings())
    vector = await get_embedder(config, _settings()).embed_query("hello")
    assert len(vector) == 256
    assert fake_llm.embedding_requests[-1]["dimensions"] == 256


async def test_models_without_dimensions_param_are_checked(fake_llm: FakeLLM) -> None:
    # Only OpenAI's v3 models take `dimensions`; other models return their natural size (384 here).
    ok = resolve_embedding_config(None, _compatible(fake_llm, "bge-small-en", 384), _settings())
    assert len(await get_embedder(ok, _settings()).embed_query("hello")) == 384
    assert "dimensions" not in fake_llm.embedding_requests[-1]

    wrong = resolve_embedding_config(None, _compatible(fake_llm, "bge-small-en", 768), _settings())
    with pytest.raises(EmbeddingError, match="384-dim vectors but embedding_dim is 768") as info:
        await get_embedder(wrong, _settings()).embed_documents(["hello"])
    assert not info.value.retryable


async def test_empty_input_sends_no_request(fake_llm: FakeLLM) -> None:
    config = resolve_embedding_config(None, _compatible(fake_llm, "text-embedding-3-small", 64), _settings())
    assert await get_embedder(config, _settings()).embed_documents([]) == []
    assert fake_llm.embedding_requests == []


async def test_unreachable_endpoint_raises_embedding_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    raw = {
        "embedding_endpoint_type": "openai",
        "embedding_endpoint": f"http://127.0.0.1:{port}/v1",
        "embedding_model": "text-embedding-3-small",
        "embedding_dim": 64,
    }
    embedder = get_embedder(resolve_embedding_config(None, raw, _settings()), _settings())
    with pytest.raises(EmbeddingError, match=f"127.0.0.1:{port}") as info:
        await embedder.embed_query("hello")
    assert info.value.__cause__ is not None
    # Classified by mnemo.llm.errors: a refused connection is transient, so Temporal retries it.
    assert info.value.retryable
    assert isinstance(info.value, LLMError)


def test_operator_key_only_goes_to_the_configured_openai_endpoint() -> None:
    settings = _settings(openai_base_url="http://127.0.0.1:9/v1", openai_api_key=SecretStr("sk-operator"))
    own = resolve_embedding_config("openai/text-embedding-3-small", None, settings)
    assert api_key_for(own, settings) == "sk-operator"
    assert api_key_for(own.model_copy(update={"embedding_endpoint": "http://127.0.0.1:9/v1/"}), settings) == (
        "sk-operator"
    )
    foreign = own.model_copy(update={"embedding_endpoint": "http://attacker.example/v1"})
    assert api_key_for(foreign, settings) == NO_KEY
    keyless = _settings(openai_base_url="http://127.0.0.1:9/v1")
    assert api_key_for(own, keyless) == NO_KEY
