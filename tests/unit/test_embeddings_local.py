"""The local e5 embedder (real model, no fakes) and embedding-config resolution."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mnemo.config import Settings
from mnemo.embeddings import (
    Embedder,
    EmbeddingConfig,
    LiteLLMEmbedder,
    LocalE5Embedder,
    get_embedder,
    resolve_embedding_config,
)

REPO = Path(__file__).resolve().parents[2]

TEXTS = [
    f"Note {i}: the user mentioned {['a cat', 'the weather', 'a trip to Lisbon', 'jazz'][i % 4]} "
    + "and some more detail " * (i % 6)
    for i in range(40)
]


def _settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {"openai_base_url": None, "openai_api_key": None, "ollama_base_url": None}
    return Settings(**{"_env_file": None, **base, **overrides})


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _run_python(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# --- the local embedder ----------------------------------------------------------------------------


async def test_local_vectors_are_384_dim_normalized_and_deterministic() -> None:
    embedder = get_embedder(resolve_embedding_config(None, None, _settings()))
    assert isinstance(embedder, LocalE5Embedder)
    assert isinstance(embedder, Embedder)
    assert embedder.dim == 384

    docs = await embedder.embed_documents(["The user owns a cat named Tom", "Olá, tudo bem?"])
    query = await embedder.embed_query("what pet does the user have")
    for vector in [*docs, query]:
        assert len(vector) == 384
        assert all(isinstance(x, float) for x in vector)
        assert math.isclose(math.sqrt(_dot(vector, vector)), 1.0, abs_tol=1e-4)

    assert await embedder.embed_documents(["The user owns a cat named Tom"]) == docs[:1]
    assert await embedder.embed_query("what pet does the user have") == query
    assert docs[0] != docs[1]


async def test_local_semantic_ranking_and_prefixes() -> None:
    embedder = LocalE5Embedder()
    cat, stocks = await embedder.embed_documents(
        ["The user owns a cat named Tom", "The stock market fell today"]
    )
    query = await embedder.embed_query("what pet does the user have")
    assert _dot(query, cat) > _dot(query, stocks)

    # "query: " and "passage: " prefixes are applied: the same text gives different vectors.
    same_text_query = await embedder.embed_query("The user owns a cat named Tom")
    assert _dot(same_text_query, cat) < 0.999


async def test_local_batching_matches_one_by_one() -> None:
    batched = await LocalE5Embedder(batch_size=32).embed_documents(TEXTS)
    one_by_one = await LocalE5Embedder(batch_size=1).embed_documents(TEXTS)
    odd_batches = await LocalE5Embedder(batch_size=7).embed_documents(TEXTS)
    assert len(batched) == len(one_by_one) == len(odd_batches) == len(TEXTS)
    for a, b, c in zip(batched, one_by_one, odd_batches, strict=True):
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5
        assert max(abs(x - y) for x, y in zip(a, c, strict=True)) < 1e-5
    assert await LocalE5Embedder().embed_documents([]) == []


async def test_local_edge_inputs() -> None:
    embedder = LocalE5Embedder()
    empty, with_nul, long = await embedder.embed_documents(["", "cat\x00 and dog", "memory " * 2000])
    assert len(empty) == len(with_nul) == len(long) == 384
    # A NUL byte must not cut the text short at the C boundary.
    (cut,) = await embedder.embed_documents(["cat"])
    assert with_nul != cut


async def test_local_concurrent_calls_complete_and_match() -> None:
    embedder = LocalE5Embedder(batch_size=4)
    expected_docs = [await embedder.embed_documents(TEXTS[i : i + 5]) for i in range(0, 40, 5)]
    expected_queries = [await embedder.embed_query(t) for t in TEXTS[:20]]

    results = await asyncio.gather(
        *(embedder.embed_documents(TEXTS[i : i + 5]) for i in range(0, 40, 5)),
        *(embedder.embed_query(t) for t in TEXTS[:20]),
    )
    assert list(results[:8]) == expected_docs
    assert list(results[8:]) == expected_queries


async def test_local_embedding_does_not_block_the_event_loop() -> None:
    embedder = LocalE5Embedder(batch_size=8)
    ticks_while_embedding = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks_while_embedding
        while not done:
            ticks_while_embedding += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await embedder.embed_documents(TEXTS[:16])
    done = True
    await task
    assert ticks_while_embedding > 0


def test_local_model_works_without_network() -> None:
    out = _run_python(
        """
        import asyncio, socket, sys

        def no_network(event, args):
            if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto"):
                raise RuntimeError(f"network access: {event} {args!r}")

        sys.addaudithook(no_network)
        from mnemo.embeddings import LocalE5Embedder

        async def main():
            e = LocalE5Embedder()
            docs = await e.embed_documents(["The user owns a cat named Tom"])
            q = await e.embed_query("pet")
            print(len(docs[0]), len(q))

        asyncio.run(main())
        try:
            socket.create_connection(("127.0.0.1", 9), timeout=1)
        except RuntimeError as exc:
            print("guard works:", "network access" in str(exc))
        """
    )
    assert out.split("\n")[:2] == ["384 384", "guard works: True"]


def test_local_model_is_loaded_once_across_threads() -> None:
    out = _run_python(
        """
        from concurrent.futures import ThreadPoolExecutor
        from mnemo.embeddings.local import local_model

        with ThreadPoolExecutor(8) as pool:
            ids = set(pool.map(lambda _: id(local_model()), range(32)))
        print(len(ids))
        """
    )
    assert out.strip() == "1"


def test_get_embedder_is_cached_per_config() -> None:
    settings = _settings()
    default = resolve_embedding_config(None, None, settings)
    assert get_embedder(default, settings) is get_embedder(default.model_copy(), settings)
    other = default.model_copy(update={"batch_size": 8})
    embedder = get_embedder(other, settings)
    assert embedder is not get_embedder(default, settings)
    assert isinstance(embedder, LocalE5Embedder) and embedder.batch_size == 8


# --- config resolution -----------------------------------------------------------------------------


def test_default_handle_is_local_e5() -> None:
    config = resolve_embedding_config(None, None, _settings())
    assert config.embedding_endpoint_type == "local"
    assert config.embedding_model == "multilingual-e5-small"
    assert config.embedding_dim == 384
    assert config.handle == "local/multilingual-e5-small"
    assert config.embedding_chunk_size == 300 and config.batch_size == 32


def test_default_handle_follows_settings() -> None:
    settings = _settings(default_embedding="openai/text-embedding-3-small")
    assert resolve_embedding_config(None, None, settings).embedding_dim == 1536


def test_openai_handle() -> None:
    config = resolve_embedding_config("openai/text-embedding-3-small", None, _settings())
    assert (config.embedding_endpoint_type, config.embedding_dim) == ("openai", 1536)
    assert config.embedding_endpoint == "https://api.openai.com/v1"
    based = resolve_embedding_config(
        "openai/text-embedding-3-large", None, _settings(openai_base_url="http://127.0.0.1:9/v1")
    )
    assert (based.embedding_endpoint, based.embedding_dim) == ("http://127.0.0.1:9/v1", 3072)
    with pytest.raises(ValueError, match="embedding_dim"):
        resolve_embedding_config("openai/my-own-model", None, _settings())


def test_openai_compatible_embedding_config() -> None:
    raw = {
        "embedding_endpoint_type": "openai",
        "embedding_endpoint": "http://127.0.0.1:9/v1",
        "embedding_model": "bge-small",
        "embedding_dim": 384,
        "azure_deployment": None,
        "some_future_letta_field": "kept",
    }
    config = resolve_embedding_config("local/multilingual-e5-small", raw, _settings())
    assert (config.embedding_endpoint_type, config.embedding_model) == ("openai", "bge-small")
    assert config.model_dump()["some_future_letta_field"] == "kept"
    assert isinstance(get_embedder(config, _settings()), LiteLLMEmbedder)

    with pytest.raises(ValueError, match="needs an embedding_endpoint"):
        resolve_embedding_config(
            None, {**raw, "embedding_endpoint_type": "vllm", "embedding_endpoint": None}, _settings()
        )


def test_config_with_only_a_handle_is_completed() -> None:
    config = resolve_embedding_config(
        None, {"handle": "local/multilingual-e5-small", "batch_size": 4}, _settings()
    )
    assert (config.embedding_dim, config.batch_size) == (384, 4)


def test_ollama_needs_base_url() -> None:
    with pytest.raises(ValueError, match="OLLAMA_BASE_URL"):
        resolve_embedding_config("ollama/nomic-embed-text", None, _settings())
    config = resolve_embedding_config(
        "ollama/nomic-embed-text:latest", None, _settings(ollama_base_url="http://127.0.0.1:11434")
    )
    assert (config.embedding_endpoint_type, config.embedding_endpoint, config.embedding_dim) == (
        "ollama",
        "http://127.0.0.1:11434",
        768,
    )


def test_unknown_provider_names_the_supported_ones() -> None:
    with pytest.raises(ValueError) as info:
        resolve_embedding_config("cohere/embed-v3", None, _settings())
    for provider in ("'local/'", "'openai/'", "'ollama/'", "cohere"):
        assert provider in str(info.value)
    with pytest.raises(ValueError, match="provider/model"):
        resolve_embedding_config("text-embedding-3-small", None, _settings())
    with pytest.raises(ValueError, match="Unsupported embedding_endpoint_type 'bedrock'"):
        resolve_embedding_config(
            None,
            {"embedding_endpoint_type": "bedrock", "embedding_model": "x", "embedding_dim": 8},
            _settings(),
        )


def test_letta_hosted_embeddings_are_not_supported() -> None:
    with pytest.raises(ValueError, match="not supported"):
        resolve_embedding_config("letta/letta-free", None, _settings())
    letta_default = {
        "embedding_endpoint_type": "openai",
        "embedding_endpoint": "https://embeddings.letta.com/",
        "embedding_model": "letta-free",
        "embedding_dim": 1024,
    }
    with pytest.raises(ValueError, match="not supported"):
        resolve_embedding_config(None, letta_default, _settings())


def test_local_config_must_match_the_model() -> None:
    with pytest.raises(ValueError, match="384"):
        resolve_embedding_config(
            None,
            {
                "embedding_endpoint_type": "local",
                "embedding_model": "multilingual-e5-small",
                "embedding_dim": 1536,
            },
            _settings(),
        )
    with pytest.raises(ValueError, match="only local model"):
        resolve_embedding_config("local/bge-small", None, _settings())


def test_invalid_config_values_are_rejected() -> None:
    with pytest.raises(ValueError):
        EmbeddingConfig(embedding_endpoint_type="openai", embedding_model="m", embedding_dim=0)
    with pytest.raises(ValueError):
        EmbeddingConfig(embedding_endpoint_type="openai", embedding_model="m", embedding_dim=8, batch_size=0)
