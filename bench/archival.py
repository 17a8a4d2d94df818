"""Archival search at scale: `mnemo.runtime.search.archival_search` (hybrid: query embedding + full-text +
HNSW vector search, fused with RRF) over one agent's large archive, and each of its parts alone."""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy import event
from sqlmodel import col, select

from bench.corpus import Corpus
from bench.passages import DIM, INDEX, LoadReport, load_passages
from bench.stack import BenchStack
from bench.stats import Summary, summarize
from mnemo.embeddings import Embedder, EmbeddingConfig, get_embedder
from mnemo.runtime import search
from mnemo.runtime.agents import recompile_system_message
from mnemo.store import vector
from mnemo.store.db import Database
from mnemo.store.tables import AgentArchiveRow, AgentRow, PassageRow, passages_fts

WARMUP_QUERIES = 5
RECALL_QUERIES = 20
RECALL_K = 10
RECOMPILES = 5
_VECTOR_LITERAL = re.compile(r"'\[[^\]]*\]'::vector")


class ArchivalReport(BaseModel):
    passages: int
    queries: int
    top_k: int
    archival_search_ms: Summary
    embed_query_ms: Summary
    fts_only_ms: Summary
    vector_only_ms: Summary
    vector_rows_returned_p50: float
    fts_rows_returned_p50: float
    vector_recall_at_10: float
    vector_plan_uses_hnsw_index: bool
    vector_plan: list[str]
    recompile_system_message_ms: Summary
    load: LoadReport
    note: str


@contextlib.contextmanager
def explaining(db: Database) -> Iterator[None]:
    """Prefix every statement sent to the database with EXPLAIN, with its real parameters."""

    def before(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool
    ) -> tuple[str, Any]:
        return "EXPLAIN " + statement, params

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before, retval=True)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", before)


def _archive_filter(agent_id: str) -> sa.Select[Any]:
    # The same candidate set archival_search uses: every archive attached to the agent.
    archives = select(AgentArchiveRow.archive_id).where(AgentArchiveRow.agent_id == agent_id)
    return select(PassageRow.id).where(col(PassageRow.archive_id).in_(archives))


def vector_query(agent_id: str, qvec: Sequence[float]) -> sa.Select[Any]:
    return vector.nearest(
        _archive_filter(agent_id),
        embedding=PassageRow.embedding,  # type: ignore[arg-type]
        embedding_dim=PassageRow.embedding_dim,  # type: ignore[arg-type]
        query=qvec,
        limit=search.CANDIDATES,
    )


def fts_query(agent_id: str, query: str) -> sa.Select[Any]:
    tsq = sa.func.websearch_to_tsquery("english", query)
    return (
        _archive_filter(agent_id)
        .where(passages_fts.op("@@")(tsq))
        .order_by(sa.func.ts_rank(passages_fts, tsq).desc())
        .limit(search.CANDIDATES)
    )


async def _timed(items: Sequence[Any], fn: Callable[[Any], Awaitable[Any]]) -> tuple[list[float], list[Any]]:
    for item in items[:WARMUP_QUERIES]:
        await fn(item)
    times, results = [], []
    for item in items:
        t0 = time.perf_counter()
        results.append(await fn(item))
        times.append((time.perf_counter() - t0) * 1000)
    return times, results


async def _ids(db: Database, stmt: sa.Select[Any]) -> list[str]:
    async with db.session() as s:
        return list((await s.execute(stmt)).scalars().all())


async def _plan(db: Database, stmt: sa.Select[Any]) -> list[str]:
    async with db.session() as s:
        with explaining(db):
            rows = (await s.execute(stmt)).all()
    # The query vector is printed in full in the plan: 384 numbers nobody needs to read.
    return [_VECTOR_LITERAL.sub("'[...]'::vector", str(r[0])) for r in rows]


async def _recall(db: Database, agent_id: str, vectors: Sequence[Sequence[float]]) -> float:
    """Share of the exact top-10 (sequential scan) that the index-served query also returns."""
    hits = total = 0
    for qvec in vectors[:RECALL_QUERIES]:
        approx = set((await _ids(db, vector_query(agent_id, qvec)))[:RECALL_K])
        async with db.transaction() as s:
            await s.execute(sa.text("SET LOCAL enable_indexscan = off"))
            exact = list((await s.execute(vector_query(agent_id, qvec).limit(RECALL_K))).scalars().all())
        hits += len(approx & set(exact))
        total += len(exact)
    return round(hits / max(total, 1), 3)


async def _recompile_times(db: Database, agent_id: str) -> list[float]:
    """Recompiling the system prompt counts the archive and lists its tags: after every memory edit."""
    times = []
    for _ in range(RECOMPILES):
        async with db.transaction() as s:
            agent = await s.get(AgentRow, agent_id)
            assert agent is not None
            t0 = time.perf_counter()
            await recompile_system_message(s, agent)
            times.append((time.perf_counter() - t0) * 1000)
    return times


async def measure_archival(
    stack: BenchStack, *, passages: int, real: int, queries: int, top_k: int = 10
) -> ArchivalReport:
    agent = await stack.create_agent(name="bench-archival", tools=["archival_memory_search"])
    config = EmbeddingConfig.model_validate(agent.embedding_config)
    if config.embedding_dim != DIM:
        raise RuntimeError(
            f"the default embedding has {config.embedding_dim} dims; this benchmark needs {DIM}"
        )
    embedder: Embedder = get_embedder(config, stack.settings)
    async with stack.db.session() as s:
        archive_id = await search.default_archive_id(s, agent.id)
    corpus = Corpus()
    load = await load_passages(
        stack.database_url,
        archive_id,
        config.model_dump(mode="json"),
        embedder,
        total=passages,
        real=real,
        corpus=corpus,
    )
    texts = corpus.queries(queries)
    db = stack.db
    print(f"archival: timing {queries} queries", file=sys.stderr, flush=True)

    embed_ms, vectors = await _timed(texts, embedder.embed_query)
    vec_ms, vec_rows = await _timed(vectors, lambda v: _ids(db, vector_query(agent.id, v)))
    fts_ms, fts_rows = await _timed(texts, lambda q: _ids(db, fts_query(agent.id, q)))

    async def hybrid(query: str) -> list[dict[str, Any]]:
        async with db.transaction() as s:
            return await search.archival_search(
                s,
                agent.id,
                embedder,
                query=query,
                tags=None,
                tag_match_mode="any",
                top_k=top_k,
                start_datetime=None,
                end_datetime=None,
                tz="UTC",
            )

    search_ms, _ = await _timed(texts, hybrid)
    plan = await _plan(db, vector_query(agent.id, vectors[0]))
    report = ArchivalReport(
        passages=load.passages,
        queries=queries,
        top_k=top_k,
        archival_search_ms=summarize(search_ms),
        embed_query_ms=summarize(embed_ms),
        fts_only_ms=summarize(fts_ms),
        vector_only_ms=summarize(vec_ms),
        vector_rows_returned_p50=summarize([len(r) for r in vec_rows]).p50,
        fts_rows_returned_p50=summarize([len(r) for r in fts_rows]).p50,
        vector_recall_at_10=await _recall(db, agent.id, vectors),
        vector_plan_uses_hnsw_index=any(INDEX in line for line in plan),
        vector_plan=plan,
        recompile_system_message_ms=summarize(await _recompile_times(db, agent.id)),
        load=load,
        note=(
            f"{load.real_embeddings} passages embedded with the local model, the other "
            f"{load.synthetic_embeddings} given random unit vectors; queries embedded for real. "
            "Bulk-loaded with the HNSW index dropped and rebuilt from its migration definition."
        ),
    )
    print(
        f"archival: search p50 {report.archival_search_ms.p50} ms (vector {report.vector_only_ms.p50}, "
        f"fts {report.fts_only_ms.p50}, embed {report.embed_query_ms.p50})",
        file=sys.stderr,
        flush=True,
    )
    return report
