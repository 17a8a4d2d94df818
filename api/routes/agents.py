"""Agents: create, retrieve, list, delete (Letta's `/v1/agents`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import serializers
from api.deps import Services, get_services, row_or_404, session
from api.errors import conflict, not_supported
from api.pagination import paginate
from mnemo.runtime.agent_update import NotSupportedYet, UpdateRejected, update_agent
from mnemo.runtime.agents import NotFound, agent_blocks, create_agent, recompile_system_message
from mnemo.runtime.approvals import pending_approval
from mnemo.runtime.context import agent_tools, load_agent
from mnemo.runtime.letta_messages import to_letta_messages
from mnemo.runtime.reset import AgentBusy, reset_messages
from mnemo.schemas.agent_update import UpdateAgent
from mnemo.schemas.agents import NOT_BUILT_YET, CreateAgent, unsupported_fields
from mnemo.store.tables import AgentRow

router = APIRouter(prefix="/agents", tags=["agents"])


async def get_agent_row(s: AsyncSession, agent_id: str) -> AgentRow:
    return await row_or_404(s, AgentRow, agent_id, f"Agent {agent_id} not found")


async def full_state(s: AsyncSession, row: AgentRow, include: list[str] | None = None) -> dict[str, Any]:
    wanted = set(include) if include is not None else {"agent.blocks", "agent.tools", "agent.secrets"}
    blocks = await agent_blocks(s, row.id) if "agent.blocks" in wanted else None
    tools = await agent_tools(s, row.id) if "agent.tools" in wanted else None
    state = serializers.agent_state(row, blocks=blocks, tools=tools, secrets="agent.secrets" in wanted)
    if "agent.pending_approval" in wanted:
        pending = await pending_approval(s, row.id)
        if pending is not None:
            shown = to_letta_messages(pending[0], row.agent_type)
            state["pending_approval"] = next(
                (m for m in shown if m["message_type"] == "approval_request_message"), None
            )
    return state


@router.post("/", summary="Create an agent")
async def create(body: CreateAgent, services: Services = Depends(get_services)) -> dict[str, Any]:
    unsupported = unsupported_fields(body.model_dump(exclude_unset=True), NOT_BUILT_YET)
    if unsupported:
        raise not_supported(unsupported)
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


def from_v1_sdk(request: Request) -> bool:
    """Letta's "1.0 SDK" switch: a Stainless client header, no User-Agent, or letta-client >= 1.0.

    Some routes (reset-messages, tool approval) answer such clients with null instead of AgentState.
    """
    if "x-stainless-package-version" in request.headers:
        return True
    agent = request.headers.get("user-agent")
    if not agent:
        return True
    name, _, version = agent.partition("/")
    major = version.split(".", 1)[0]
    return name.strip().lower() == "letta-client" and major.isdigit() and int(major) >= 1


@router.patch("/{agent_id}", summary="Update an agent")
async def update(
    agent_id: str, body: UpdateAgent, services: Services = Depends(get_services)
) -> dict[str, Any]:
    try:
        async with services.db.transaction() as s:
            row = await update_agent(s, agent_id, body, services.settings)
    except UpdateRejected as exc:
        raise RequestValidationError(
            [{"loc": ("body", exc.field), "msg": str(exc), "type": "value_error"}]
        ) from exc
    except NotSupportedYet as exc:
        raise not_supported(str(exc)) from exc
    except AgentBusy as exc:
        raise conflict(str(exc)) from exc
    async with services.db.session() as s:
        return await full_state(s, row)


@router.post("/{agent_id}/recompile", summary="Recompile an agent's system message")
async def recompile(
    agent_id: str,
    update_timestamp: bool = False,
    dry_run: bool = False,
    services: Services = Depends(get_services),
) -> str:
    """The compiled system prompt. `dry_run`: compute it without storing it."""
    async with services.db.transaction() as s:
        agent = await load_agent(s, agent_id, for_update=not dry_run)
        return await recompile_system_message(s, agent, update_timestamp=update_timestamp, dry_run=dry_run)


class ResetMessagesRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    add_default_initial_messages: bool = False


@router.patch("/{agent_id}/reset-messages", summary="Reset an agent's in-context messages")
async def reset(
    agent_id: str,
    request: Request,
    body: ResetMessagesRequest | None = Body(default=None),
    services: Services = Depends(get_services),
) -> dict[str, Any] | None:
    """Keep only the system message in context; the other messages stay in recall memory. 409 while the
    agent has runs queued or running."""
    body = body or ResetMessagesRequest()
    try:
        async with services.db.transaction() as s:
            row = await reset_messages(
                s, agent_id, add_default_initial_messages=body.add_default_initial_messages
            )
    except AgentBusy as exc:
        raise conflict(str(exc)) from exc
    if from_v1_sdk(request):
        return None
    async with services.db.session() as s:
        return await full_state(s, row)
