"""An agent's core memory blocks (`/v1/agents/{id}/core-memory/blocks`): list, retrieve and update by
label, attach and detach by block id. Every change recompiles the agent's system prompt, so the next
model request sees it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import serializers
from api.deps import Services, get_services, session
from api.errors import conflict
from api.pagination import Order, page_items
from api.routes.agents import full_state, get_agent_row
from api.routes.blocks import (
    BlockUpdate,
    get_block_row,
    lock_agents,
    recompile_agents,
    update_block,
)
from mnemo.runtime.agents import agent_blocks
from mnemo.store.tables import AgentBlockRow, AgentRow, BlockRow

router = APIRouter(prefix="/agents", tags=["core-memory"])


async def block_by_label(s: AsyncSession, agent_id: str, label: str) -> BlockRow:
    stmt = (
        select(BlockRow)
        .join(AgentBlockRow, col(AgentBlockRow.block_id) == col(BlockRow.id))
        .where(AgentBlockRow.agent_id == agent_id, AgentBlockRow.block_label == label)
    )
    row = (await s.exec(stmt)).one_or_none()
    if row is None:
        labels = [b.label for b in await agent_blocks(s, agent_id)]
        raise HTTPException(
            404,
            f"Block with label {label!r} not found for agent {agent_id} (its labels: {', '.join(labels) or 'none'})",
        )
    return row


async def _locked_agent(s: AsyncSession, agent_id: str) -> AgentRow:
    agents = await lock_agents(s, [agent_id])
    if not agents:
        raise HTTPException(404, f"Agent {agent_id} not found")
    return agents[0]


@router.get("/{agent_id}/core-memory/blocks", summary="List an agent's memory blocks")
async def list_blocks(
    agent_id: str,
    after: str | None = None,
    before: str | None = None,
    limit: int = Query(50, ge=1, le=1000),
    order: Order = "asc",
    s: AsyncSession = Depends(session),
) -> list[dict[str, Any]]:
    await get_agent_row(s, agent_id)
    rows = page_items(
        await agent_blocks(s, agent_id),
        lambda b: b.id,
        after=after,
        before=before,
        limit=limit,
        order=order,
        what="Block",
    )
    return [serializers.block(r) for r in rows]


@router.get(
    "/{agent_id}/core-memory/blocks/{block_label}", summary="Retrieve an agent's memory block by label"
)
async def retrieve_block(
    agent_id: str, block_label: str, s: AsyncSession = Depends(session)
) -> dict[str, Any]:
    await get_agent_row(s, agent_id)
    return serializers.block(await block_by_label(s, agent_id, block_label))


@router.patch(
    "/{agent_id}/core-memory/blocks/{block_label}", summary="Update an agent's memory block by label"
)
async def modify_block(
    agent_id: str, block_label: str, body: BlockUpdate, services: Services = Depends(get_services)
) -> dict[str, Any]:
    async with services.db.transaction() as s:
        await get_agent_row(s, agent_id)
        block = await block_by_label(s, agent_id, block_label)
        row = await update_block(s, block.id, body)  # recompiles this agent and any other that shares it
    return serializers.block(row)


@router.patch("/{agent_id}/core-memory/blocks/attach/{block_id}", summary="Attach a block to an agent")
async def attach_block(
    agent_id: str, block_id: str, services: Services = Depends(get_services)
) -> dict[str, Any]:
    async with services.db.transaction() as s:
        await _locked_agent(s, agent_id)
        block = await get_block_row(s, block_id)
        links = (await s.exec(select(AgentBlockRow).where(AgentBlockRow.agent_id == agent_id))).all()
        if not any(link.block_id == block_id for link in links):
            clash = next((link for link in links if link.block_label == block.label), None)
            if clash is not None:
                raise conflict(
                    f"Agent {agent_id} already has a block labelled {block.label!r} ({clash.block_id}); "
                    "detach it first or relabel one of the blocks",
                )
            s.add(AgentBlockRow(agent_id=agent_id, block_id=block.id, block_label=block.label))
            await s.flush()
            await recompile_agents(s, [agent_id])
    async with services.db.session() as s:
        return await full_state(s, await get_agent_row(s, agent_id))


@router.patch("/{agent_id}/core-memory/blocks/detach/{block_id}", summary="Detach a block from an agent")
async def detach_block(
    agent_id: str, block_id: str, services: Services = Depends(get_services)
) -> dict[str, Any]:
    async with services.db.transaction() as s:
        await _locked_agent(s, agent_id)
        await get_block_row(s, block_id)
        link = await s.get(AgentBlockRow, (agent_id, block_id))
        if link is None:
            raise HTTPException(404, f"Block {block_id} is not attached to agent {agent_id}")
        await s.delete(link)
        await s.flush()
        await recompile_agents(s, [agent_id])
    async with services.db.session() as s:
        return await full_state(s, await get_agent_row(s, agent_id))
