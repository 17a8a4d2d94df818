"""Recall (conversation) and archival search: full-text and pgvector, fused with reciprocal-rank fusion."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.embeddings import Embedder
from mnemo.store import vector
from mnemo.store.tables import AgentArchiveRow, MessageRow, PassageRow, messages_fts, passages_fts

RRF_K = 60
CANDIDATES = 50
# Messages embedded lazily per search; older ones are still found by full-text search.
LAZY_EMBED_LIMIT = 256


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


async def _embed_missing(session: AsyncSession, agent_id: str, embedder: Embedder) -> None:
    rows = (
        await session.exec(
            select(MessageRow.id, MessageRow.text)
            .where(
                MessageRow.agent_id == agent_id,
                col(MessageRow.embedding).is_(None),
                col(MessageRow.text).is_not(None),
                col(MessageRow.role).in_(("user", "assistant")),
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
    wanted = [r for r in (roles or ["user", "assistant"]) if r != "tool"]  # tool messages never match
    conds = [
        MessageRow.agent_id == agent_id,
        col(MessageRow.role).in_(wanted),
        col(MessageRow.text).is_not(None),
        # Letta drops the model's own calls to this tool from the results.
        sa.not_(
            sa.func.coalesce(sa.cast(MessageRow.tool_calls, sa.Text), "").contains('"conversation_search"')
        ),
    ]
    if start:
        conds.append(col(MessageRow.created_at) >= start)
    if end:
        conds.append(col(MessageRow.created_at) <= end)
    base = select(MessageRow.id).where(*conds)
    fts_ids: list[str] = []
    vec_ids: list[str] = []
    if query:
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
        if embedder is not None:
            await _embed_missing(session, agent_id, embedder)
            qvec = await embedder.embed_query(query)
            stmt = vector.nearest(
                base,
                embedding=MessageRow.embedding,
                embedding_dim=MessageRow.embedding_dim,
                query=qvec,
                limit=CANDIDATES,
            )  # type: ignore[arg-type]
            vec_ids = list((await session.exec(stmt)).all())
        fused = rrf(fts_ids, vec_ids)[:limit]
    else:
        recent = (await session.exec(base.order_by(col(MessageRow.seq).desc()).limit(limit))).all()
        fused = [(mid, 0.0, [None, None]) for mid in recent]
    if not fused:
        return {"message": "No results found.", "results": []}
    rows = {
        r.id: r
        for r in (
            await session.exec(select(MessageRow).where(col(MessageRow.id).in_([f[0] for f in fused])))
        ).all()
    }
    now = datetime.now(UTC)
    zone = ZoneInfo(tz or "UTC")
    results = []
    for mid, score, (fts_rank, vec_rank) in fused:
        row = rows[mid]
        results.append(
            {
                "timestamp": row.created_at.astimezone(zone).isoformat(),
                "time_ago": time_ago(row.created_at, now),
                "role": row.role,
                "relevance": {
                    "rrf_score": round(score, 6),
                    "vector_rank": vec_rank,
                    "fts_rank": fts_rank,
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
    if tag_match_mode not in ("any", "all"):
        raise ValueError(f"tag_match_mode must be 'any' or 'all', got {tag_match_mode!r}")
    archives = select(AgentArchiveRow.archive_id).where(AgentArchiveRow.agent_id == agent_id)
    conds: list[Any] = [col(PassageRow.archive_id).in_(archives)]
    if tags:
        tag_array = sa.cast(sa.literal(list(tags), sa.ARRAY(sa.Text)), sa.ARRAY(sa.Text))
        conds.append(PassageRow.__table__.c.tags.op("&&" if tag_match_mode == "any" else "@>")(tag_array))  # type: ignore[attr-defined]
    start = parse_date(start_datetime, tz, end=False, name="start_datetime")
    end = parse_date(end_datetime, tz, end=True, name="end_datetime")
    if start:
        conds.append(col(PassageRow.created_at) >= start)
    if end:
        conds.append(col(PassageRow.created_at) <= end)
    base = select(PassageRow.id).where(*conds)
    tsq = sa.func.websearch_to_tsquery("english", query)
    # The query's embedding (CPU, in the embedder's thread) while Postgres runs the full-text search.
    embedding = asyncio.ensure_future(embedder.embed_query(query))
    fts_ids = list(
        (
            await session.exec(
                base.where(passages_fts.op("@@")(tsq))
                .order_by(sa.func.ts_rank(passages_fts, tsq).desc())
                .limit(CANDIDATES)
            )
        ).all()
    )
    qvec = await embedding
    # The HNSW scan returns at most ef_search rows (pgvector's default 40 < CANDIDATES), and filters
    # apply after it: widen it, more so when filtering.
    await vector.set_ef_search(session, 200 if (tags or start or end) else CANDIDATES)
    stmt = vector.nearest(
        base,
        embedding=PassageRow.embedding,
        embedding_dim=PassageRow.embedding_dim,
        query=qvec,
        limit=CANDIDATES,
    )  # type: ignore[arg-type]
    vec_ids = list((await session.exec(stmt)).all())
    fused = rrf(vec_ids, fts_ids)[:top_k]
    if not fused:
        return []
    rows = {
        r.id: r
        for r in (
            await session.exec(select(PassageRow).where(col(PassageRow.id).in_([f[0] for f in fused])))
        ).all()
    }
    zone = ZoneInfo(tz or "UTC")
    return [
        {
            "id": pid,
            "timestamp": rows[pid].created_at.astimezone(zone).isoformat(),
            "content": rows[pid].text,
            "tags": list(rows[pid].tags),
            "relevance": {"rrf_score": round(score, 6), "vector_rank": vr, "fts_rank": fr},
        }
        for pid, score, (vr, fr) in fused
    ]
