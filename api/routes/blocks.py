"""Memory blocks (Letta's global `/v1/blocks`), the block-edit service core-memory routes share, and
the routes' shared locking and recompiling helpers.

A block can be shared by several agents; an edit through the API bumps its version, records a
`block_history` row (actor "user") and recompiles the system prompt of every agent it is attached to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import serializers
from api.deps import Services, get_services, row_or_404, session
from api.errors import conflict, not_supported
from api.pagination import Order, paginate
from api.routes.agents import full_state
from mnemo.runtime.agents import new_block, recompile_system_message
from mnemo.schemas.agents import CreateBlock
from mnemo.store.search import tags_match
from mnemo.store.tables import AgentBlockRow, AgentRow, BlockHistoryRow, BlockRow

router = APIRouter(prefix="/blocks", tags=["blocks"])

# --- the block-edit service -------------------------------------------------------------------------


class BlockUpdate(BaseModel):
    """Letta's `BlockUpdate`: every field optional; template/project fields are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    value: str | None = None
    limit: int | None = Field(default=None, ge=1)
    label: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = None
    read_only: bool | None = None
    hidden: bool | None = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None
    is_template: bool | None = None
    template_name: str | None = None
    preserve_on_migration: bool | None = None

    @field_validator("value")
    @classmethod
    def _strip_nul(cls, v: str | None) -> str | None:
        return v.replace("\x00", "") if v is not None else v  # Postgres text cannot hold NUL


def check_block_limit(value: str, limit: int) -> None:
    if len(value) > limit:
        raise HTTPException(422, f"Edit failed: Exceeds {limit} character limit (requested {len(value)})")


async def get_block_row(s: AsyncSession, block_id: str) -> BlockRow:
    return await row_or_404(s, BlockRow, block_id, f"Block with id '{block_id}' not found")


async def attached_agent_ids(s: AsyncSession, block_id: str) -> list[str]:
    stmt = (
        select(AgentBlockRow.agent_id)
        .where(AgentBlockRow.block_id == block_id)
        .order_by(col(AgentBlockRow.agent_id))
    )
    return list((await s.exec(stmt)).all())


async def lock_agents(s: AsyncSession, agent_ids: Sequence[str]) -> list[AgentRow]:
    """Row-lock agents in id order. Memory tools lock their agent before its blocks; so must we."""
    if not agent_ids:
        return []
    stmt = (
        select(AgentRow)
        .where(col(AgentRow.id).in_(list(agent_ids)))
        .order_by(col(AgentRow.id))
        .with_for_update()
    )
    return list((await s.exec(stmt)).all())


async def recompile_agents(s: AsyncSession, agent_ids: Sequence[str]) -> None:
    for agent_id in dict.fromkeys(agent_ids):
        agent = await s.get(AgentRow, agent_id)
        if agent is not None:
            await recompile_system_message(s, agent)


async def _lock_block(s: AsyncSession, block_id: str) -> BlockRow:
    stmt = (
        select(BlockRow)
        .where(BlockRow.id == block_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    row = (await s.exec(stmt)).one_or_none()
    if row is None:
        raise HTTPException(404, f"Block with id '{block_id}' not found")
    return row


async def update_block(s: AsyncSession, block_id: str, body: BlockUpdate) -> BlockRow:
    """Apply a user's edit to a block and recompile every agent that has it. Call in a transaction."""
    agent_ids = await attached_agent_ids(s, block_id)
    await lock_agents(s, agent_ids)
    block = await _lock_block(s, block_id)
    # An agent that attached the block after our first read has been committed by now (its link's
    # foreign-key lock made us wait); it is recompiled too, without a lock, to keep the lock order.
    agent_ids = sorted(set(agent_ids) | set(await attached_agent_ids(s, block_id)))
    given = body.model_fields_set
    value = body.value if body.value is not None else block.value
    limit = body.limit if body.limit is not None else block.limit
    check_block_limit(value, limit)
    label = body.label if body.label is not None else block.label
    if label != block.label:
        clash = (
            await s.exec(
                select(AgentBlockRow.agent_id).where(
                    col(AgentBlockRow.agent_id).in_(agent_ids),
                    AgentBlockRow.block_label == label,
                    AgentBlockRow.block_id != block.id,
                )
            )
        ).first()
        if clash is not None:
            raise conflict(
                f"Cannot relabel block {block.id} to {label!r}: agent {clash} already has a block with that label",
            )
    description = body.description if "description" in given else block.description
    versioned = (value, label, description, limit) != (
        block.value,
        block.label,
        block.description,
        block.limit,
    )
    block.value, block.label, block.description, block.limit = value, label, description, limit
    for field in ("read_only", "hidden", "is_template", "preserve_on_migration"):
        if getattr(body, field) is not None:
            setattr(block, field, getattr(body, field))
    if body.tags is not None:
        block.tags = list(body.tags)
    if "metadata" in given:
        block.metadata_ = body.metadata
    if "template_name" in given:
        block.template_name = body.template_name
    if versioned:
        block.version += 1
        s.add(
            BlockHistoryRow(
                block_id=block.id,
                version=block.version,
                label=block.label,
                value=block.value,
                description=block.description,
                limit=block.limit,
                actor_type="user",
            )
        )
    s.add(block)
    await s.flush()
    await recompile_agents(s, agent_ids)
    return block


# --- routes -----------------------------------------------------------------------------------------


class BlockQuery(BaseModel):
    """`GET /v1/blocks/` query parameters (Letta's names and defaults)."""

    label: str | None = None
    templates_only: bool = False
    name: str | None = None
    identity_id: str | None = None
    identifier_keys: list[str] | None = None
    project_id: str | None = None
    tags: list[str] | None = None
    match_all_tags: bool = False
    limit: int = Field(50, ge=1, le=1000)
    before: str | None = None
    after: str | None = None
    order: Order = "asc"
    order_by: Literal["created_at"] = "created_at"
    label_search: str | None = None
    description_search: str | None = None
    value_search: str | None = None
    connected_to_agents_count_gt: int | None = None
    connected_to_agents_count_lt: int | None = None
    connected_to_agents_count_eq: list[int] | None = None
    show_hidden_blocks: bool = False

    def conditions(self) -> list[Any]:
        unsupported = [k for k in ("identity_id", "identifier_keys", "project_id") if getattr(self, k)]
        if unsupported:
            raise not_supported(f"Filtering blocks by {', '.join(unsupported)} is not supported yet")
        conds: list[Any] = [col(BlockRow.is_template) == self.templates_only]
        if not self.show_hidden_blocks:
            conds.append(sa.not_(col(BlockRow.hidden)))
        if self.label:
            conds.append(BlockRow.label == self.label)
        if self.name:
            conds.append(BlockRow.template_name == self.name)
        if self.tags:
            mode: Literal["any", "all"] = "all" if self.match_all_tags else "any"
            conds.append(tags_match(BlockRow.__table__.c.tags, self.tags, mode))  # type: ignore[attr-defined]
        searches = ((BlockRow.label, self.label_search), (BlockRow.description, self.description_search))
        for column, needle in (*searches, (BlockRow.value, self.value_search)):
            if needle:
                conds.append(col(column).icontains(needle, autoescape=True))
        links = (
            sa.select(sa.func.count())
            .select_from(AgentBlockRow)
            .where(col(AgentBlockRow.block_id) == col(BlockRow.id))
            .scalar_subquery()
        )
        if self.connected_to_agents_count_gt is not None:
            conds.append(links > self.connected_to_agents_count_gt)
        if self.connected_to_agents_count_lt is not None:
            conds.append(links < self.connected_to_agents_count_lt)
        if self.connected_to_agents_count_eq:
            conds.append(links.in_(self.connected_to_agents_count_eq))
        return conds


@router.get("/", summary="List blocks")
async def list_blocks(
    q: Annotated[BlockQuery, Query()], s: AsyncSession = Depends(session)
) -> list[dict[str, Any]]:
    stmt = select(BlockRow).where(*q.conditions())
    rows = await paginate(
        s, stmt, BlockRow, after=q.after, before=q.before, limit=q.limit, order=q.order, what="Block"
    )
    return [serializers.block(r) for r in rows]


@router.get("/count", summary="Count blocks")
async def count_blocks(s: AsyncSession = Depends(session)) -> int:
    return int((await s.exec(select(sa.func.count()).select_from(BlockRow))).one())


@router.post("/", summary="Create a block")
async def create_block(body: CreateBlock, services: Services = Depends(get_services)) -> dict[str, Any]:
    limit = body.effective_limit()
    check_block_limit(body.value, limit)
    row = new_block(body, description=body.description)
    async with services.db.transaction() as s:
        s.add(row)
        await s.flush()
    return serializers.block(row)


@router.get("/{block_id}", summary="Retrieve a block")
async def retrieve_block(block_id: str, s: AsyncSession = Depends(session)) -> dict[str, Any]:
    return serializers.block(await get_block_row(s, block_id))


@router.patch("/{block_id}", summary="Update a block (every agent that has it sees the change)")
async def modify_block(
    block_id: str, body: BlockUpdate, services: Services = Depends(get_services)
) -> dict[str, Any]:
    async with services.db.transaction() as s:
        row = await update_block(s, block_id, body)
    return serializers.block(row)


@router.delete("/{block_id}", summary="Delete a block (detaching it from every agent)")
async def delete_block(block_id: str, services: Services = Depends(get_services)) -> None:
    async with services.db.transaction() as s:
        agent_ids = await attached_agent_ids(s, block_id)
        await lock_agents(s, agent_ids)
        block = await _lock_block(s, block_id)
        agent_ids = sorted(set(agent_ids) | set(await attached_agent_ids(s, block_id)))
        await s.delete(block)  # the agents' links go with it (ON DELETE CASCADE)
        await s.flush()
        await recompile_agents(s, agent_ids)


_LEGACY_INCLUDE = {"memory": "agent.blocks", "blocks": "agent.blocks", "tools": "agent.tools"}


@router.get("/{block_id}/agents", summary="List the agents a block is attached to")
async def list_agents_for_block(
    block_id: str,
    before: str | None = None,
    after: str | None = None,
    limit: int = Query(50, ge=1, le=1000),
    order: Order = "desc",
    order_by: Literal["created_at"] = "created_at",
    include: list[str] = Query(default=[]),
    include_relationships: list[str] | None = Query(default=None, deprecated=True),
    s: AsyncSession = Depends(session),
) -> list[dict[str, Any]]:
    await get_block_row(s, block_id)
    wanted = list(include) + [_LEGACY_INCLUDE[r] for r in include_relationships or [] if r in _LEGACY_INCLUDE]
    stmt = (
        select(AgentRow)
        .join(AgentBlockRow, col(AgentBlockRow.agent_id) == col(AgentRow.id))
        .where(AgentBlockRow.block_id == block_id)
    )
    rows = await paginate(
        s, stmt, AgentRow, after=after, before=before, limit=limit, order=order, what="Agent"
    )
    return [await full_state(s, r, wanted) for r in rows]
