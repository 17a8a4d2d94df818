"""Agents: create, retrieve, list, delete (Letta's `/v1/agents`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import serializers
from api.deps import Services, get_services, session
from api.pagination import paginate
from mnemo.runtime.agents import NotFound, agent_blocks, create_agent
from mnemo.runtime.context import agent_tools
from mnemo.schemas.agents import CreateAgent
from mnemo.store.tables import AgentRow

router = APIRouter(prefix="/agents", tags=["agents"])


async def get_agent_row(s: AsyncSession, agent_id: str) -> AgentRow:
    row = await s.get(AgentRow, agent_id)
    if row is None:
        raise HTTPException(404, f"Agent {agent_id} not found")
    return row


async def full_state(s: AsyncSession, row: AgentRow, include: list[str] | None = None) -> dict[str, Any]:
    wanted = set(include) if include is not None else {"agent.blocks", "agent.tools"}
    blocks = await agent_blocks(s, row.id) if "agent.blocks" in wanted else None
    tools = await agent_tools(s, row.id) if "agent.tools" in wanted else None
    return serializers.agent_state(row, blocks=blocks, tools=tools)


@router.post("/", summary="Create an agent")
async def create(body: CreateAgent, services: Services = Depends(get_services)) -> dict[str, Any]:
    try:
        async with services.db.transaction() as s:
            row = await create_agent(s, body, services.settings)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    async with services.db.session() as s:
        return await full_state(s, row)


@router.get("/", summary="List agents")
async def list_agents(
    name: str | None = None,
    limit: int = Query(50, ge=1, le=1000),
    after: str | None = None,
    before: str | None = None,
    order: str = Query("desc", pattern="^(asc|desc)$"),
    include: list[str] = Query(default=[]),
    s: AsyncSession = Depends(session),
) -> list[dict[str, Any]]:
    stmt = select(AgentRow)
    if name:
        stmt = stmt.where(AgentRow.name == name)
    rows = await paginate(
        s, stmt, AgentRow, after=after, before=before, limit=limit, order=order, what="Agent"
    )
    return [await full_state(s, r, include) for r in rows]


@router.get("/{agent_id}", summary="Retrieve an agent")
async def retrieve(
    agent_id: str, include: list[str] = Query(default=[]), s: AsyncSession = Depends(session)
) -> dict[str, Any]:
    row = await get_agent_row(s, agent_id)
    return await full_state(s, row, include)


@router.delete("/{agent_id}", summary="Delete an agent")
async def delete(agent_id: str, services: Services = Depends(get_services)) -> dict[str, str]:
    async with services.db.transaction() as s:
        row = await get_agent_row(s, agent_id)
        await s.delete(row)
    return {"message": f"Agent id={agent_id} successfully deleted"}
