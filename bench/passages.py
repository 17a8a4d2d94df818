"""Loading a large archival memory quickly: binary COPY with the HNSW index dropped, then rebuilt with the
exact definition the migration gave it (the way one would bulk-load pgvector).

Embeddings: the first `real` passages get real local-model embeddings; the rest random unit vectors,
since embedding 100k passages on two cores takes far longer than the whole benchmark may.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from bench.corpus import Corpus
from mnemo.embeddings import Embedder
from mnemo.ids import new_id
from mnemo.store import vector
from mnemo.store.db import libpq_url

DIM = 384
INDEX = vector.index_name("passages", DIM)
CHUNK = 5000
COPY_SQL = (
    "COPY passages (id, archive_id, text, embedding, embedding_config, tags) FROM STDIN WITH (FORMAT BINARY)"
)
COPY_TYPES = ["text", "text", "text", "vector", "jsonb", "text[]"]
# Enough for the graph of 100k 384-dim vectors to be built in memory (much slower once it spills).
BUILD_MEMORY = "1GB"
INCREMENTAL_ROWS = 500


class LoadReport(BaseModel):
    passages: int
    real_embeddings: int
    synthetic_embeddings: int
    embed_ms_per_passage: float
    copy_s: float
    index_build_s: float
    index_definition: str
    insert_with_index_ms_per_row: float
    table_mb: float
    index_mb: float


def _copy(
    conn: psycopg.Connection[Any],
    archive_id: str,
    config: dict[str, Any],
    texts: list[str],
    vectors: np.ndarray,
    corpus: Corpus,
) -> None:
    with conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
        copy.set_types(COPY_TYPES)
        for text, vec in zip(texts, vectors, strict=True):
            copy.write_row((new_id("passage"), archive_id, text, vec, Jsonb(config), corpus.tags()))


def _load_sync(
    url: str,
    archive_id: str,
    config: dict[str, Any],
    corpus: Corpus,
    real_texts: list[str],
    real_vectors: np.ndarray,
    bulk: int,
    incremental: int,
) -> tuple[float, float, str, float]:
    with psycopg.connect(url) as conn:
        register_vector(conn)
        definition = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (INDEX,)).fetchone()
        if definition is None:
            raise RuntimeError(f"index {INDEX} is missing: are the migrations applied?")
        conn.execute(f"DROP INDEX {INDEX}")
        t0 = time.perf_counter()
        _copy(conn, archive_id, config, real_texts, real_vectors, corpus)
        done = len(real_texts)
        while done < bulk:
            count = min(CHUNK, bulk - done)
            _copy(
                conn,
                archive_id,
                config,
                corpus.passages(count, done),
                corpus.unit_vectors(count, DIM),
                corpus,
            )
            done += count
        conn.commit()
        copy_s = time.perf_counter() - t0
        print(
            f"archival: copied {bulk} passages in {copy_s:.1f}s; building {INDEX}",
            file=sys.stderr,
            flush=True,
        )
        t0 = time.perf_counter()
        conn.execute(f"SET maintenance_work_mem = '{BUILD_MEMORY}'")
        conn.execute(definition[0])
        conn.execute("ANALYZE passages")
        conn.commit()
        build_s = time.perf_counter() - t0
        # What a user's archival inserts cost once the archive is large: rows go through the live index.
        t0 = time.perf_counter()
        _copy(
            conn,
            archive_id,
            config,
            corpus.passages(incremental, bulk),
            corpus.unit_vectors(incremental, DIM),
            corpus,
        )
        conn.commit()
        incremental_ms = (time.perf_counter() - t0) * 1000 / max(incremental, 1)
    return copy_s, build_s, definition[0], incremental_ms


def _sizes(url: str) -> tuple[float, float]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT pg_total_relation_size('passages'), pg_relation_size(%s::regclass)", (INDEX,)
        ).fetchone()
    assert row is not None
    return round(row[0] / 2**20, 1), round(row[1] / 2**20, 1)


async def load_passages(
    database_url: str,
    archive_id: str,
    embedding_config: dict[str, Any],
    embedder: Embedder,
    *,
    total: int,
    real: int,
    corpus: Corpus,
) -> LoadReport:
    """Insert `total` passages into `archive_id`: all but the last few hundred in bulk, those through the
    live index."""
    incremental = min(INCREMENTAL_ROWS, total // 10)
    bulk = total - incremental
    real = min(real, bulk)
    texts = corpus.passages(real)
    t0 = time.perf_counter()
    real_vectors = (
        np.array(await embedder.embed_documents(texts), dtype=np.float32) if real else np.empty((0, DIM))
    )
    embed_ms = (time.perf_counter() - t0) * 1000 / max(real, 1)
    print(f"archival: embedded {real} passages ({embed_ms:.1f} ms each)", file=sys.stderr, flush=True)
    url = libpq_url(database_url)
    copy_s, build_s, definition, incremental_ms = await asyncio.to_thread(
        _load_sync, url, archive_id, embedding_config, corpus, texts, real_vectors, bulk, incremental
    )
    table_mb, index_mb = await asyncio.to_thread(_sizes, url)
    return LoadReport(
        passages=total,
        real_embeddings=real,
        synthetic_embeddings=total - real,
        embed_ms_per_passage=round(embed_ms, 2),
        copy_s=round(copy_s, 2),
        index_build_s=round(build_s, 2),
        index_definition=definition,
        insert_with_index_ms_per_row=round(incremental_ms, 3),
        table_mb=table_mb,
        index_mb=index_mb,
    )
