"""Every agent's messages (`/v1/messages`): list, retrieve one, search (the SDK's `client.messages`).

Messages render as in `/v1/agents/{id}/messages`: the owning agent's type decides how a stored message
shows. Search is the hybrid search `conversation_search` runs, over one agent or all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import Services, get_services, row_or_404, session
from api.errors import not_supported
from api.pagination import message_page
from api.routes.agents import get_agent_row
from mnemo.embeddings import EmbeddingError
from mnemo.runtime.letta_messages import to_letta_messages
from mnemo.runtime.search import SearchMode, message_filters, search_messages, vector_scopes
from mnemo.store.tables import AgentRow, MessageRow

router = APIRouter(prefix="/messages", tags=["messages"])

NO_CONVERSATIONS = "Conversations are not supported yet: Mnemo keeps one message history per agent"
# The Letta message types a search result can be (`LettaMessageSearchResult`).
SEARCH_RESULT_TYPES = ("system_message", "user_message", "reasoning_message", "assistant_message")


async def _agent_types(s: AsyncSession, agent_ids: set[str]) -> dict[str, str]:
    rows = (
        await s.exec(select(AgentRow.id, AgentRow.agent_type).where(col(AgentRow.id).in_(agent_ids)))
    ).all()
    return dict(rows)


async def _render(s: AsyncSession, rows: Sequence[MessageRow]) -> list[dict[str, Any]]:
    types = await _agent_types(s, {r.agent_id for r in rows})
    return [m for r in rows for m in to_letta_messages(r, types[r.agent_id])]


@router.get("/", summary="List every agent's messages")
async def list_all_messages(
    after: str | None = None,
    before: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    order: Literal["asc", "desc"] = "desc",
    conversation_id: str | None = None,
    include_return_message_types: list[str] | None = Query(default=None),
    s: AsyncSession = Depends(session),
) -> list[dict[str, Any]]:
    if conversation_id is not None:
        raise not_supported(NO_CONVERSATIONS)
    rows = await message_page(s, select(MessageRow), after=after, before=before, limit=limit, order=order)
    types = include_return_message_types
    # As in an agent's list, the filter applies to the page (a page can hold fewer than `limit`).
    return [m for m in await _render(s, rows) if not types or m["message_type"] in types]


class MessageSearchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str = Field(min_length=1, description="What to look for")
    search_mode: SearchMode = "hybrid"
    agent_id: str | None = Field(default=None, description="Only this agent's messages")
    conversation_id: str | None = None
    limit: int = Field(default=50, ge=1, le=100)
    start_date: datetime | None = Field(default=None, description="Messages created at or after this")
    end_date: datetime | None = Field(default=None, description="Messages created at or before this")


def aware(moment: datetime | None, tz: str | None) -> datetime | None:
    """A date filter without a zone is in the agent's timezone (UTC across agents)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=ZoneInfo(tz or "UTC"))


def _search_result(m: dict[str, Any], row: MessageRow) -> dict[str, Any]:
    body = (
        {"reasoning": m["reasoning"]}
        if m["message_type"] == "reasoning_message"
        else {"content": m["content"]}
    )
    return {
        "message_type": m["message_type"],
        "message_id": row.id,
        "agent_id": row.agent_id,
        "conversation_id": None,
        "created_at": row.created_at.isoformat(),
        **body,
    }


@router.post("/search", summary="Search messages across agents (full-text, vector or hybrid)")
async def search_all_messages(
    body: MessageSearchRequest, services: Services = Depends(get_services)
) -> list[dict[str, Any]]:
    if body.conversation_id is not None:
        raise not_supported(NO_CONVERSATIONS)
    # A transaction: the search stores the embeddings it computes for messages that had none.
    async with services.db.transaction() as s:
        if body.agent_id is not None:
            agent = await get_agent_row(s, body.agent_id)
            owners: list[tuple[str, Mapping[str, Any] | None]] = [(agent.id, agent.embedding_config)]
            tz: str | None = agent.timezone
        else:
            agents = await s.exec(select(AgentRow.id, AgentRow.embedding_config))
            owners = [(agent_id, config) for agent_id, config in agents.all()]
            tz = None
        scopes = vector_scopes(owners, services.settings) if body.search_mode != "fts" else []
        if body.search_mode == "vector" and not scopes:
            raise HTTPException(
                422,
                "search_mode 'vector' needs an agent with an embedding model; use 'fts' for these messages",
            )
        conds = message_filters(
            agent_ids=[body.agent_id] if body.agent_id is not None else None,
            start=aware(body.start_date, tz),
            end=aware(body.end_date, tz),
        )
        try:
            hits = await search_messages(
                s, conds, query=body.query, mode=body.search_mode, scopes=scopes, limit=body.limit
            )
        except EmbeddingError as exc:
            raise HTTPException(502, f"The embedding provider failed: {exc}") from exc
        found = {
            r.id: r
            for r in (
                await s.exec(select(MessageRow).where(col(MessageRow.id).in_([h.id for h in hits])))
            ).all()
        }
        rows = [found[h.id] for h in hits]
        types = await _agent_types(s, {r.agent_id for r in rows})
    return [
        _search_result(m, row)
        for row in rows
        for m in to_letta_messages(row, types[row.agent_id])
        if m["message_type"] in SEARCH_RESULT_TYPES
    ]


@router.get("/{message_id}", summary="Retrieve a message (as the Letta messages it shows as)")
async def retrieve_message(message_id: str, s: AsyncSession = Depends(session)) -> list[dict[str, Any]]:
    row = await row_or_404(s, MessageRow, message_id, f"Message {message_id} not found")
    return await _render(s, [row])
