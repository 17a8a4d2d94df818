"""Tools (`/v1/tools`) and an agent's tools (`/v1/agents/{id}/tools`).

A custom tool is Python source; its JSON schema is generated from the source (function name,
signature, Google-style docstring) unless the request gives one. The server never runs the source
here: running tools is the sandboxes' job. Tool names are unique, and a built-in tool's name is
taken: creating a tool with it is a 409.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import serializers
from api.deps import Services, get_services, row_or_404, session
from api.errors import conflict
from api.pagination import Order, page_items, paginate
from api.routes.agents import full_state, get_agent_row
from api.routes.blocks import lock_agents
from mnemo.ids import new_id
from mnemo.runtime.context import agent_tools
from mnemo.store.tables import DEFAULT_RETURN_CHAR_LIMIT, AgentToolRow, ToolRow
from mnemo.tools.builtin import is_builtin
from mnemo.tools.schema_gen import ToolSourceError, given_or_generated

router = APIRouter(tags=["tools"])

# Letta's ToolType values (schemas/enums.py).
TOOL_TYPES = (
    "custom",
    "letta_core",
    "letta_memory_core",
    "letta_multi_agent_core",
    "letta_sleeptime_core",
    "letta_voice_sleeptime_core",
    "letta_builtin",
    "letta_files_core",
    "external_mcp",
    "external_langchain",
    "external_composio",
)


class PipRequirement(BaseModel):
    name: str = Field(min_length=1)
    version: str | None = None


class NpmRequirement(BaseModel):
    name: str = Field(min_length=1)
    version: str | None = None


class ToolCreate(BaseModel):
    """Letta's `ToolCreate`."""

    model_config = ConfigDict(extra="ignore")

    source_code: str = Field(min_length=1)
    source_type: Literal["python", "typescript"] = "python"
    json_schema: dict[str, Any] | None = None
    args_json_schema: dict[str, Any] | None = None
    description: str | None = None
    tags: list[str] | None = None
    return_char_limit: int = Field(default=DEFAULT_RETURN_CHAR_LIMIT, ge=1, le=1_000_000)
    pip_requirements: list[PipRequirement] | None = None
    npm_requirements: list[NpmRequirement] | None = None
    default_requires_approval: bool | None = None
    enable_parallel_execution: bool | None = False


class ToolUpdate(BaseModel):
    """Letta's `ToolUpdate`: every field optional."""

    model_config = ConfigDict(extra="ignore")

    source_code: str | None = Field(default=None, min_length=1)
    source_type: Literal["python", "typescript"] | None = None
    json_schema: dict[str, Any] | None = None
    args_json_schema: dict[str, Any] | None = None
    description: str | None = None
    tags: list[str] | None = None
    return_char_limit: int | None = Field(default=None, ge=1, le=1_000_000)
    pip_requirements: list[PipRequirement] | None = None
    npm_requirements: list[NpmRequirement] | None = None
    metadata: dict[str, Any] | None = None
    default_requires_approval: bool | None = None
    enable_parallel_execution: bool | None = None


def tool_schema(source_code: str, source_type: str, json_schema: dict[str, Any] | None) -> dict[str, Any]:
    """The tool's JSON schema: the one given (checked), else generated from the Python source."""
    try:
        schema = given_or_generated(source_code, source_type, json_schema)
    except ToolSourceError as exc:
        raise HTTPException(422, str(exc)) from exc
    # Built-in rows are created lazily, so the name is checked even before one exists.
    if is_builtin(schema["name"]):
        raise conflict(f"{schema['name']!r} is the name of a built-in tool; give the function another name")
    return schema


def _requirements(items: list[PipRequirement] | list[NpmRequirement] | None) -> list[dict[str, Any]] | None:
    return [r.model_dump() for r in items] if items is not None else None


async def get_tool_row(s: AsyncSession, tool_id: str) -> ToolRow:
    return await row_or_404(s, ToolRow, tool_id, f"Tool with id {tool_id} not found")


async def upsert_tool(services: Services, body: ToolCreate) -> ToolRow:
    """Create the tool, or replace the custom tool of the same name (Letta's create_or_update)."""
    schema = tool_schema(body.source_code, body.source_type, body.json_schema)
    values: dict[str, Any] = {
        "name": schema["name"],
        "tool_type": "custom",
        "description": body.description or schema.get("description"),
        "source_type": body.source_type,
        "source_code": body.source_code,
        "json_schema": schema,
        "args_json_schema": body.args_json_schema,
        "tags": list(body.tags or []),
        "return_char_limit": body.return_char_limit,
        "pip_requirements": _requirements(body.pip_requirements),
        "npm_requirements": _requirements(body.npm_requirements),
        "default_requires_approval": bool(body.default_requires_approval),
        "enable_parallel_execution": bool(body.enable_parallel_execution),
    }
    table = ToolRow.__table__  # type: ignore[attr-defined]
    insert_stmt = insert(ToolRow).values(id=new_id("tool"), **values)
    # One statement, so concurrent upserts of one name cannot race; built-in tools are never replaced.
    stmt = insert_stmt.on_conflict_do_update(
        index_elements=[table.c.name],
        set_={**{k: insert_stmt.excluded[k] for k in values if k != "name"}, "updated_at": sa.func.now()},
        where=table.c.tool_type == "custom",
    ).returning(table.c.id)
    async with services.db.transaction() as s:
        tool_id = (await s.execute(stmt)).scalar_one_or_none()
        if tool_id is None:
            raise conflict(
                f"{schema['name']!r} is the name of a built-in tool; give the function another name"
            )
        row = (await s.exec(select(ToolRow).where(ToolRow.id == tool_id))).one()
    return row


def _flatten(values: list[str] | None) -> list[str]:
    # Letta accepts repeated parameters and comma-separated values alike.
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _tool_types(values: list[str] | None, param: str) -> list[str]:
    types = _flatten(values)
    bad = [t for t in types if t not in TOOL_TYPES]
    if bad:
        raise HTTPException(
            422, f"{param}: invalid tool type {bad[0]!r}; valid types are {', '.join(TOOL_TYPES)}"
        )
    return types


class ToolFilters(BaseModel):
    """Filters shared by `GET /v1/tools/` and `GET /v1/tools/count`."""

    name: str | None = None
    names: list[str] | None = None
    tool_ids: list[str] | None = None
    search: str | None = None
    tool_types: list[str] | None = None
    exclude_tool_types: list[str] | None = None
    return_only_letta_tools: bool = False
    exclude_letta_tools: bool = False

    def conditions(self) -> list[Any]:
        conds: list[Any] = []
        if wanted := ([self.name] if self.name else []) + _flatten(self.names):
            conds.append(col(ToolRow.name).in_(wanted))
        if self.tool_ids:
            conds.append(col(ToolRow.id).in_(_flatten(self.tool_ids)))
        if self.search:
            conds.append(col(ToolRow.name).icontains(self.search, autoescape=True))
        if types := _tool_types(self.tool_types, "tool_types"):
            conds.append(col(ToolRow.tool_type).in_(types))
        if excluded := _tool_types(self.exclude_tool_types, "exclude_tool_types"):
            conds.append(col(ToolRow.tool_type).not_in(excluded))
        if self.return_only_letta_tools:
            conds.append(col(ToolRow.tool_type).startswith("letta_"))
        if self.exclude_letta_tools:
            conds.append(sa.not_(col(ToolRow.tool_type).startswith("letta_")))
        return conds


class ToolQuery(ToolFilters):
    before: str | None = None
    after: str | None = None
    limit: int = Field(50, ge=1, le=1000)
    order: Order = "desc"
    order_by: Literal["created_at"] = "created_at"


@router.post("/tools/", summary="Create a tool (replaces a custom tool of the same name)")
async def create_tool(body: ToolCreate, services: Services = Depends(get_services)) -> dict[str, Any]:
    return serializers.tool(await upsert_tool(services, body))


@router.put("/tools/", summary="Create or update a tool")
async def put_tool(body: ToolCreate, services: Services = Depends(get_services)) -> dict[str, Any]:
    return serializers.tool(await upsert_tool(services, body))


@router.get("/tools/", summary="List tools")
async def list_tools(
    q: Annotated[ToolQuery, Query()], s: AsyncSession = Depends(session)
) -> list[dict[str, Any]]:
    stmt = select(ToolRow).where(*q.conditions())
    rows = await paginate(
        s, stmt, ToolRow, after=q.after, before=q.before, limit=q.limit, order=q.order, what="Tool"
    )
    return [serializers.tool(r) for r in rows]


@router.get("/tools/count", summary="Count tools")
async def count_tools(q: Annotated[ToolFilters, Query()], s: AsyncSession = Depends(session)) -> int:
    return int((await s.exec(select(sa.func.count()).select_from(ToolRow).where(*q.conditions()))).one())


@router.get("/tools/{tool_id}", summary="Retrieve a tool")
async def retrieve_tool(tool_id: str, s: AsyncSession = Depends(session)) -> dict[str, Any]:
    return serializers.tool(await get_tool_row(s, tool_id))


@router.patch("/tools/{tool_id}", summary="Update a tool")
async def modify_tool(
    tool_id: str, body: ToolUpdate, services: Services = Depends(get_services)
) -> dict[str, Any]:
    given = body.model_fields_set
    async with services.db.transaction() as s:
        row = (await s.exec(select(ToolRow).where(ToolRow.id == tool_id).with_for_update())).one_or_none()
        if row is None:
            raise HTTPException(404, f"Tool with id {tool_id} not found")
        if row.tool_type != "custom":
            raise conflict(
                f"{row.name!r} is a built-in tool ({row.tool_type}); built-in tools cannot be modified"
            )
        source = body.source_code if body.source_code is not None else row.source_code or ""
        source_type = body.source_type or row.source_type
        if body.json_schema is not None or (
            body.source_code is not None and body.source_code != row.source_code
        ):
            schema = tool_schema(source, source_type, body.json_schema)
            if schema["name"] != row.name:
                other = (await s.exec(select(ToolRow).where(ToolRow.name == schema["name"]))).first()
                if other is not None:
                    raise conflict(f"A tool named {schema['name']!r} already exists ({other.id})")
            row.name, row.json_schema = schema["name"], schema
            if "description" not in given:
                row.description = schema.get("description")
        row.source_code, row.source_type = source, source_type
        if "description" in given:
            row.description = body.description
        for field in (
            "args_json_schema",
            "return_char_limit",
            "default_requires_approval",
            "enable_parallel_execution",
        ):
            if field in given and getattr(body, field) is not None:
                setattr(row, field, getattr(body, field))
        if "args_json_schema" in given and body.args_json_schema is None:
            row.args_json_schema = None
        if body.tags is not None:
            row.tags = list(body.tags)
        if "pip_requirements" in given:
            row.pip_requirements = _requirements(body.pip_requirements)
        if "npm_requirements" in given:
            row.npm_requirements = _requirements(body.npm_requirements)
        if "metadata" in given:
            row.metadata_ = body.metadata
        s.add(row)
        await s.flush()
    return serializers.tool(row)


@router.delete("/tools/{tool_id}", summary="Delete a tool (detaching it from every agent)")
async def delete_tool(tool_id: str, services: Services = Depends(get_services)) -> None:
    async with services.db.transaction() as s:
        await s.delete(await get_tool_row(s, tool_id))  # agents' links go with it (ON DELETE CASCADE)


# --- an agent's tools -------------------------------------------------------------------------------


@router.get("/agents/{agent_id}/tools", summary="List an agent's tools")
async def list_agent_tools(
    agent_id: str,
    after: str | None = None,
    before: str | None = None,
    limit: int = Query(50, ge=1, le=1000),
    order: Order = "asc",
    s: AsyncSession = Depends(session),
) -> list[dict[str, Any]]:
    await get_agent_row(s, agent_id)
    rows = page_items(
        await agent_tools(s, agent_id),
        lambda t: t.id,
        after=after,
        before=before,
        limit=limit,
        order=order,
        what="Tool",
    )
    return [serializers.tool(r) for r in rows]


@router.patch("/agents/{agent_id}/tools/attach/{tool_id}", summary="Attach a tool to an agent")
async def attach_tool(
    agent_id: str, tool_id: str, services: Services = Depends(get_services)
) -> dict[str, Any]:
    async with services.db.transaction() as s:
        if not await lock_agents(s, [agent_id]):
            raise HTTPException(404, f"Agent {agent_id} not found")
        await get_tool_row(s, tool_id)
        await s.execute(
            insert(AgentToolRow).values(agent_id=agent_id, tool_id=tool_id).on_conflict_do_nothing()
        )
    async with services.db.session() as s:
        return await full_state(s, await get_agent_row(s, agent_id))


@router.patch("/agents/{agent_id}/tools/detach/{tool_id}", summary="Detach a tool from an agent")
async def detach_tool(
    agent_id: str, tool_id: str, services: Services = Depends(get_services)
) -> dict[str, Any]:
    async with services.db.transaction() as s:
        if not await lock_agents(s, [agent_id]):
            raise HTTPException(404, f"Agent {agent_id} not found")
        await get_tool_row(s, tool_id)
        link = await s.get(AgentToolRow, (agent_id, tool_id))
        if link is None:
            raise HTTPException(404, f"Tool {tool_id} is not attached to agent {agent_id}")
        await s.delete(link)
    async with services.db.session() as s:
        return await full_state(s, await get_agent_row(s, agent_id))
