"""Passage search across archives (`POST /v1/passages/search`, the SDK's `client.passages.search`).

The archival search the agents' `archival_memory_search` runs, scoped to one agent's archives
(`agent_id`, which wins as in Letta), one archive (`archive_id`) or every archive.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from api import serializers
from api.deps import Services, get_services
from api.routes.agents import get_agent_row
from api.routes.global_messages import aware
from mnemo.embeddings import EmbeddingError
from mnemo.runtime.search import Hit, VectorScope, passage_filters, search_passages, vector_scopes
from mnemo.store.tables import AgentArchiveRow, ArchiveRow, PassageRow

router = APIRouter(prefix="/passages", tags=["passages"])


class PassageSearchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str | None = Field(default=None, description="What to look for; without it, the newest passages")
    agent_id: str | None = Field(default=None, description="Only the archives attached to this agent")
    archive_id: str | None = Field(default=None, description="Only this archive")
    tags: list[str] | None = None
    tag_match_mode: Literal["any", "all"] = "any"
    limit: int = Field(default=50, ge=1, le=100)
    start_date: datetime | None = Field(default=None, description="Passages created at or after this")
    end_date: datetime | None = Field(default=None, description="Passages created at or before this")


@router.post("/search", summary="Search passages across archives (vector and full-text)")
async def search_all_passages(
    body: PassageSearchRequest, services: Services = Depends(get_services)
) -> list[dict[str, Any]]:
    async with services.db.transaction() as s:
        tz: str | None = None
        archives: Any
        if body.agent_id is not None:
            agent = await get_agent_row(s, body.agent_id)
            tz = agent.timezone
            archives = select(AgentArchiveRow.archive_id).where(AgentArchiveRow.agent_id == agent.id)
            # The agent's own model embedded its passages (as its archival search assumes).
            scopes = vector_scopes([(agent.id, agent.embedding_config)], services.settings)
            scopes = [VectorScope(scope.embedder) for scope in scopes]
        elif body.archive_id is not None:
            archive = await s.get(ArchiveRow, body.archive_id)
            if archive is None:
                raise HTTPException(404, f"Archive {body.archive_id} not found")
            archives = [archive.id]
            scopes = vector_scopes([(archive.id, archive.embedding_config)], services.settings)
        else:
            archives = None
            rows = await s.exec(select(ArchiveRow.id, ArchiveRow.embedding_config))
            scopes = vector_scopes(
                [(archive_id, config) for archive_id, config in rows.all()], services.settings
            )
        start, end = aware(body.start_date, tz), aware(body.end_date, tz)
        conds = passage_filters(
            archive_ids=archives, tags=body.tags, tag_match_mode=body.tag_match_mode, start=start, end=end
        )
        if body.query:
            try:
                hits = await search_passages(
                    s,
                    conds,
                    query=body.query,
                    scopes=scopes,
                    top_k=body.limit,
                    narrowed=bool(body.tags or start or end),
                )
            except EmbeddingError as exc:
                raise HTTPException(502, f"The embedding provider failed: {exc}") from exc
        else:
            newest = select(PassageRow.id).where(*conds)
            newest = newest.order_by(col(PassageRow.created_at).desc(), col(PassageRow.id).desc())
            hits = [Hit(pid, 0.0, None, None) for pid in (await s.exec(newest.limit(body.limit))).all()]
        found = {
            r.id: r
            for r in (
                await s.exec(select(PassageRow).where(col(PassageRow.id).in_([h.id for h in hits])))
            ).all()
        }
    return [
        {
            "passage": serializers.passage(found[h.id]),
            "score": h.score,
            "metadata": {"rrf_score": round(h.score, 6), "vector_rank": h.vector_rank, "fts_rank": h.fts_rank}
            if body.query
            else {},
        }
        for h in hits
    ]
