"""An agent's archival memory (`/v1/agents/{id}/archival-memory`): insert, list, search, delete passages.

Inserts go to the agent's default archive; lists and searches cover every archive attached to it.
The archival count is part of the system prompt, so inserts and deletes recompile it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import serializers
from api.deps import Services, get_services, session
from api.routes.agents import get_agent_row
from api.routes.blocks import lock_agents, paginate, recompile_agents
from mnemo.embeddings import Embedder, EmbeddingConfig, EmbeddingError, get_embedder
from mnemo.ids import new_id
from mnemo.memory.tool_schemas import RETRIEVAL_QUERY_DEFAULT_PAGE_SIZE
from mnemo.runtime.search import archival_search, default_archive_id
from mnemo.store.tables import AgentArchiveRow, AgentRow, PassageRow

router = APIRouter(prefix="/agents", tags=["archival-memory"])


class CreateArchivalMemory(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str = Field(min_length=1, description="The text to remember")
    tags: list[str] | None = None
    created_at: datetime | None = None

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        v = v.replace("\x00", "")
        if not v.strip():
            raise ValueError("text must not be blank")
        return v


def _embedder(agent: AgentRow, services: Services) -> Embedder:
    if not agent.embedding_config:
        raise HTTPException(422, f"Agent {agent.id} has no embedding model, so it has no archival memory")
    return get_embedder(EmbeddingConfig.model_validate(agent.embedding_config), services.settings)


async def _embed(embedder: Embedder, text: str, *, query: bool) -> list[float]:
    try:
        return await embedder.embed_query(text) if query else (await embedder.embed_documents([text]))[0]
    except EmbeddingError as exc:
        raise HTTPException(502, f"The embedding provider failed: {exc}") from exc


def _agent_archives(agent_id: str) -> Any:
    return select(AgentArchiveRow.archive_id).where(AgentArchiveRow.agent_id == agent_id)


@router.get("/{agent_id}/archival-memory", summary="List an agent's archival memory passages")
async def list_passages(
    agent_id: str,
    after: str | None = None,
    before: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    search: str | None = Query(
        default=None, description="Only passages whose text contains this (case-insensitive)"
    ),
    ascending: bool = True,
    s: AsyncSession = Depends(session),
) -> list[dict[str, Any]]:
    await get_agent_row(s, agent_id)
    stmt = select(PassageRow).where(col(PassageRow.archive_id).in_(_agent_archives(agent_id)))
    if search:
        stmt = stmt.where(col(PassageRow.text).icontains(search, autoescape=True))
    order = "asc" if ascending else "desc"
    rows = await paginate(
        s, stmt, PassageRow, after=after, before=before, limit=limit, order=order, what="Passage"
    )
    return [serializers.passage(r) for r in rows]


@router.post("/{agent_id}/archival-memory", summary="Insert a passage into an agent's archival memory")
async def create_passage(
    agent_id: str, body: CreateArchivalMemory, services: Services = Depends(get_services)
) -> list[dict[str, Any]]:
    async with services.db.session() as s:
        agent = await get_agent_row(s, agent_id)
    embedding = await _embed(_embedder(agent, services), body.text, query=False)
    async with services.db.transaction() as s:
        locked = await lock_agents(s, [agent_id])  # one memory writer per agent, as the archival tool does
        if not locked:
            raise HTTPException(404, f"Agent {agent_id} not found")
        try:
            archive_id = await default_archive_id(s, agent_id)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
        row = PassageRow(
            id=new_id("passage"),
            archive_id=archive_id,
            text=body.text,
            embedding=embedding,
            embedding_config=locked[0].embedding_config,
            tags=list(dict.fromkeys(body.tags or [])),
        )
        if body.created_at is not None:
            row.created_at = body.created_at
        s.add(row)
        await s.flush()
        await recompile_agents(s, [agent_id])
    return [serializers.passage(row)]


@router.get("/{agent_id}/archival-memory/search", summary="Search an agent's archival memory")
async def search_passages(
    agent_id: str,
    query: str = Query(min_length=1, description="What to look for (semantic and full-text)"),
    tags: list[str] | None = Query(default=None),
    tag_match_mode: Literal["any", "all"] = "any",
    top_k: int | None = Query(default=None, ge=1, le=1000),
    start_datetime: str | None = None,
    end_datetime: str | None = None,
    services: Services = Depends(get_services),
) -> dict[str, Any]:
    async with services.db.session() as s:
        agent = await get_agent_row(s, agent_id)
        embedder = _embedder(agent, services)
        try:
            results = await archival_search(
                s,
                agent_id,
                embedder,
                query=query,
                tags=tags,
                tag_match_mode=tag_match_mode,
                top_k=top_k or RETRIEVAL_QUERY_DEFAULT_PAGE_SIZE,
                start_datetime=start_datetime,
                end_datetime=end_datetime,
                tz=agent.timezone,
            )
        except ValueError as exc:  # a date the filters cannot parse
            raise HTTPException(422, str(exc)) from exc
        except EmbeddingError as exc:
            raise HTTPException(502, f"The embedding provider failed: {exc}") from exc
    return {"results": results, "count": len(results)}


@router.delete(
    "/{agent_id}/archival-memory/{memory_id}", summary="Delete a passage from an agent's archival memory"
)
async def delete_passage(
    agent_id: str, memory_id: str, services: Services = Depends(get_services)
) -> dict[str, str]:
    async with services.db.transaction() as s:
        if not await lock_agents(s, [agent_id]):
            raise HTTPException(404, f"Agent {agent_id} not found")
        row = (
            await s.exec(
                select(PassageRow).where(
                    PassageRow.id == memory_id, col(PassageRow.archive_id).in_(_agent_archives(agent_id))
                )
            )
        ).one_or_none()
        if row is None:
            raise HTTPException(
                404, f"Passage {memory_id} not found in the archival memory of agent {agent_id}"
            )
        await s.delete(row)
        await s.flush()
        await recompile_agents(s, [agent_id])
    return {"message": f"Passage id={memory_id} successfully deleted"}
