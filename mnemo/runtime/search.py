"""Recall (conversation) and archival search: full-text and pgvector, fused with reciprocal-rank fusion.

The cores (`search_messages`, `search_passages`) take their scope as SQL conditions and one
`VectorScope` per embedding model, so the agent tools (one agent) and the global API routes (every
agent, an archive) run the same search.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.config import Settings
from mnemo.embeddings import Embedder, EmbeddingConfig, get_embedder
from mnemo.store import vector
from mnemo.store.tables import AgentArchiveRow, MessageRow, PassageRow, messages_fts, passages_fts

RRF_K = 60
CANDIDATES = 50
# Messages embedded lazily per search; older ones are still found by full-text search.
LAZY_EMBED_LIMIT = 256
# Roles whose text a message search looks at (tool returns and system prompts never match).
SEARCHED_ROLES = ("user", "assistant")

SearchMode = Literal["vector", "fts", "hybrid"]


@dataclass(frozen=True)
class VectorScope:
    """Rows embedded by one model: a query vector is only compared with vectors of its own model.

    `owner_ids` are the agents (messages) or archives (passages) whose rows `embedder` embedded; None
    when every row the search's conditions select was embedded by it.
    """

    embedder: Embedder
    owner_ids: Sequence[str] | None = None


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    fts_rank: int | None
    vector_rank: int | None


def vector_scopes(
    owners: Iterable[tuple[str, Mapping[str, Any] | None]], settings: Settings | None = None
) -> list[VectorScope]:
    """Owners (agents or archives, with their embedding configs) grouped by embedding model; those
    without a model are left out (full-text search still covers their rows)."""
    groups: dict[str, tuple[Embedder, list[str]]] = {}
    for owner_id, config in owners:
        if not config:
            continue
        parsed = EmbeddingConfig.model_validate(config)
        key = parsed.model_dump_json()
        if key not in groups:
            groups[key] = (get_embedder(parsed, settings), [])
        groups[key][1].append(owner_id)
    return [VectorScope(embedder, ids) for embedder, ids in groups.values()]


def rrf(*rankings: Sequence[str]) -> list[tuple[str, float, list[int | None]]]:
    """Fuse rankings (lists of ids, best first): [(id, score, [rank in each list or None])], best first."""
    scores: dict[str, float] = {}
    ranks: dict[str, list[int | None]] = {}
    for i, ranking in enumerate(rankings):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (RRF_K + rank)
            ranks.setdefault(item, [None] * len(rankings))[i] = rank
    ordered = sorted(scores, key=lambda k: -scores[k])
    return [(k, scores[k], ranks[k]) for k in ordered]


def _hits(fts_ids: Sequence[str], vector_lists: Sequence[Sequence[str]], limit: int) -> list[Hit]:
    # Each embedding model ranks only its own rows, so a row is in at most one vector list.
    fused = rrf(fts_ids, *vector_lists)[:limit]
    return [
        Hit(item, score, ranks[0], next((r for r in ranks[1:] if r is not None), None))
        for item, score, ranks in fused
    ]


def parse_date(value: str | None, tz: str, *, end: bool, name: str) -> datetime | None:
    """Letta's date filters: "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM"; a date-only end means end of day."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"Invalid {name} format: {value}. Use ISO 8601 format (YYYY-MM-DD or YYYY-MM-DDTHH:MM)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(tz or "UTC"))
    if end and len(value) <= 10:
        parsed = parsed + timedelta(days=1) - timedelta(microseconds=1)
    return parsed


def time_ago(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


async def _embed_missing(session: AsyncSession, agent_ids: Sequence[str], embedder: Embedder) -> None:
    rows = (
        await session.exec(
            select(MessageRow.id, MessageRow.text)
            .where(
                col(MessageRow.agent_id).in_(agent_ids),
                col(MessageRow.embedding).is_(None),
                col(MessageRow.text).is_not(None),
                col(MessageRow.role).in_(SEARCHED_ROLES),
            )
            .order_by(col(MessageRow.seq).desc())
            .limit(LAZY_EMBED_LIMIT)
        )
    ).all()
    if not rows:
        return
    vectors = await embedder.embed_documents([t or "" for _, t in rows])
    for (mid, _), vec in zip(rows, vectors, strict=True):
        await session.execute(sa.update(MessageRow).where(col(MessageRow.id) == mid).values(embedding=vec))


def message_filters(
    *,
    agent_ids: Sequence[str] | None,
    roles: Sequence[str] = SEARCHED_ROLES,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Any]:
    """The conditions of a message search: these agents (None: every agent), roles, a date range."""
    conds: list[Any] = [
        col(MessageRow.role).in_([r for r in roles if r in SEARCHED_ROLES]),
        col(MessageRow.text).is_not(None),
    ]
    if agent_ids is not None:
        conds.append(col(MessageRow.agent_id).in_(agent_ids))
    if start:
        conds.append(col(MessageRow.created_at) >= start)
    if end:
        conds.append(col(MessageRow.created_at) <= end)
    return conds


async def search_messages(
    session: AsyncSession,
    conds: Sequence[Any],
    *,
    query: str,
    mode: SearchMode,
    scopes: Sequence[VectorScope],
    limit: int,
) -> list[Hit]:
    """Messages matching `conds` ranked for `query`, best first. Stores the embeddings it computes for
    messages that had none, so run it in a transaction."""
    base = select(MessageRow.id).where(*conds)
    fts_ids: list[str] = []
    if mode != "vector":
        tsq = sa.func.websearch_to_tsquery("english", query)
        fts_ids = list(
            (
                await session.exec(
                    base.where(messages_fts.op("@@")(tsq))
                    .order_by(sa.func.ts_rank(messages_fts, tsq).desc())
                    .limit(CANDIDATES)
                )
            ).all()
        )
    vector_lists: list[list[str]] = []
    if mode != "fts" and scopes:
        # Filters apply after the HNSW scan (ef_search candidates): widen it, as archival search does.
        await vector.set_ef_search(session, 200)
    for scope in scopes if mode != "fts" else ():
        if scope.owner_ids is None:
            raise ValueError("a message search's vector scope names its agents")
        await _embed_missing(session, scope.owner_ids, scope.embedder)
        qvec = await scope.embedder.embed_query(query)
        stmt = vector.nearest(
            base.where(col(MessageRow.agent_id).in_(scope.owner_ids)),
            embedding=col(MessageRow.embedding),
            embedding_dim=col(MessageRow.embedding_dim),
            query=qvec,
            limit=CANDIDATES,
        )
        vector_lists.append(list((await session.exec(stmt)).all()))
    return _hits(fts_ids, vector_lists, limit)


async def conversation_search(
    session: AsyncSession,
    agent_id: str,
    embedder: Embedder | None,
    *,
    query: str | None,
    roles: list[str] | None,
    limit: int,
    start_date: str | None,
    end_date: str | None,
    tz: str,
) -> dict[str, Any]:
    start = parse_date(start_date, tz, end=False, name="start_date")
    end = parse_date(end_date, tz, end=True, name="end_date")
    conds = message_filters(agent_ids=[agent_id], roles=roles or SEARCHED_ROLES, start=start, end=end)
    # Letta drops the model's own calls to this tool from the results.
    conds.append(
        sa.not_(
            sa.func.coalesce(sa.cast(MessageRow.tool_calls, sa.Text), "").contains('"conversation_search"')
        )
    )
    if query:
        scopes = [VectorScope(embedder, [agent_id])] if embedder is not None else []
        hits = await search_messages(session, conds, query=query, mode="hybrid", scopes=scopes, limit=limit)
    else:
        base = select(MessageRow.id).where(*conds)
        recent = (await session.exec(base.order_by(col(MessageRow.seq).desc()).limit(limit))).all()
        hits = [Hit(mid, 0.0, None, None) for mid in recent]
    if not hits:
        return {"message": "No results found.", "results": []}
    rows = {
        r.id: r
        for r in (
            await session.exec(select(MessageRow).where(col(MessageRow.id).in_([h.id for h in hits])))
        ).all()
    }
    now = datetime.now(UTC)
    zone = ZoneInfo(tz or "UTC")
    results = []
    for hit in hits:
        row = rows[hit.id]
        results.append(
            {
                "timestamp": row.created_at.astimezone(zone).isoformat(),
                "time_ago": time_ago(row.created_at, now),
                "role": row.role,
                "relevance": {
                    "rrf_score": round(hit.score, 6),
                    "vector_rank": hit.vector_rank,
                    "fts_rank": hit.fts_rank,
                    "search_mode": "hybrid" if query else "recent",
                },
                "content": _display_text(row),
            }
        )
    return {"message": f"Showing {len(results)} results:", "results": results}


def _display_text(row: MessageRow) -> str:
    text = row.text or ""
    for call in row.tool_calls or []:
        fn = call.get("function") or {}
        if fn.get("name") == "send_message":
            try:
                return str(json.loads(fn.get("arguments") or "{}").get("message", text))
            except ValueError:
                pass
    return text


async def default_archive_id(session: AsyncSession, agent_id: str) -> str:
    archive_id = (
        await session.exec(
            select(AgentArchiveRow.archive_id).where(
                AgentArchiveRow.agent_id == agent_id, col(AgentArchiveRow.is_default)
            )
        )
    ).one_or_none()
    if archive_id is None:
        raise LookupError(f"agent {agent_id} has no default archive")
    return archive_id


def passage_filters(
    *,
    archive_ids: Any,
    tags: Sequence[str] | None = None,
    tag_match_mode: str = "any",
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Any]:
    """The conditions of a passage search: these archives (ids or a subquery; None: every archive),
    tags (any or all of them), a date range."""
    if tag_match_mode not in ("any", "all"):
        raise ValueError(f"tag_match_mode must be 'any' or 'all', got {tag_match_mode!r}")
    conds: list[Any] = []
    if archive_ids is not None:
        conds.append(col(PassageRow.archive_id).in_(archive_ids))
    if tags:
        tag_array = sa.cast(sa.literal(list(tags), sa.ARRAY(sa.Text)), sa.ARRAY(sa.Text))
        conds.append(PassageRow.__table__.c.tags.op("&&" if tag_match_mode == "any" else "@>")(tag_array))  # type: ignore[attr-defined]
    if start:
        conds.append(col(PassageRow.created_at) >= start)
    if end:
        conds.append(col(PassageRow.created_at) <= end)
    return conds


async def search_passages(
    session: AsyncSession,
    conds: Sequence[Any],
    *,
    query: str,
    scopes: Sequence[VectorScope],
    top_k: int,
    narrowed: bool,
) -> list[Hit]:
    """Passages matching `conds` ranked for `query` (vector and full-text), best first. `narrowed`:
    the conditions filter more than the scope (tags, dates), so the HNSW scan must look further."""
    base = select(PassageRow.id).where(*conds)
    tsq = sa.func.websearch_to_tsquery("english", query)
    # The query's embeddings (CPU, in the embedders' threads) while Postgres runs the full-text search.
    embeddings = [asyncio.ensure_future(scope.embedder.embed_query(query)) for scope in scopes]
    fts_ids = list(
        (
            await session.exec(
                base.where(passages_fts.op("@@")(tsq))
                .order_by(sa.func.ts_rank(passages_fts, tsq).desc())
                .limit(CANDIDATES)
            )
        ).all()
    )
    # The HNSW scan returns at most ef_search rows (pgvector's default 40 < CANDIDATES), and filters
    # apply after it: widen it, more so when filtering.
    if scopes:
        await vector.set_ef_search(session, 200 if narrowed else CANDIDATES)
    vector_lists: list[list[str]] = []
    for scope, embedding in zip(scopes, embeddings, strict=True):
        scoped = (
            base if scope.owner_ids is None else base.where(col(PassageRow.archive_id).in_(scope.owner_ids))
        )
        qvec = await embedding
        stmt = vector.nearest(
            scoped,
            embedding=col(PassageRow.embedding),
            embedding_dim=col(PassageRow.embedding_dim),
            query=qvec,
            limit=CANDIDATES,
        )
        vector_lists.append(list((await session.exec(stmt)).all()))
    # Vector first, as Letta fuses them (ties go to the semantic match).
    fused = rrf(*vector_lists, fts_ids)[:top_k]
    n = len(vector_lists)
    return [
        Hit(item, score, ranks[n], next((r for r in ranks[:n] if r is not None), None))
        for item, score, ranks in fused
    ]


async def archival_search(
    session: AsyncSession,
    agent_id: str,
    embedder: Embedder,
    *,
    query: str,
    tags: list[str] | None,
    tag_match_mode: str,
    top_k: int,
    start_datetime: str | None,
    end_datetime: str | None,
    tz: str,
) -> list[dict[str, Any]]:
    archives = select(AgentArchiveRow.archive_id).where(AgentArchiveRow.agent_id == agent_id)
    start = parse_date(start_datetime, tz, end=False, name="start_datetime")
    end = parse_date(end_datetime, tz, end=True, name="end_datetime")
    conds = passage_filters(
        archive_ids=archives, tags=tags, tag_match_mode=tag_match_mode, start=start, end=end
    )
    hits = await search_passages(
        session,
        conds,
        query=query,
        scopes=[VectorScope(embedder)],
        top_k=top_k,
        narrowed=bool(tags or start or end),
    )
    if not hits:
        return []
    rows = {
        r.id: r
        for r in (
            await session.exec(select(PassageRow).where(col(PassageRow.id).in_([h.id for h in hits])))
        ).all()
    }
    zone = ZoneInfo(tz or "UTC")
    return [
        {
            "id": hit.id,
            "timestamp": rows[hit.id].created_at.astimezone(zone).isoformat(),
            "content": rows[hit.id].text,
            "tags": list(rows[hit.id].tags),
            "relevance": {
                "rrf_score": round(hit.score, 6),
                "vector_rank": hit.vector_rank,
                "fts_rank": hit.fts_rank,
            },
        }
        for hit in hits
    ]
