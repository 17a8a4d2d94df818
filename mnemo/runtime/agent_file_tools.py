"""The tools of an imported Agent File: built-ins map to ours by name, custom tools come from their source.

Tool names are unique server-wide (as in Letta), so a custom tool whose name exists is reused, or its
definition overwritten when the import asks to (`override_existing_tools`, Letta's default).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.ids import new_id
from mnemo.runtime.agent_update import NotSupportedYet
from mnemo.schemas.agent_file import ToolSchema
from mnemo.store.tables import DEFAULT_RETURN_CHAR_LIMIT, ToolRow
from mnemo.tools.builtin import ensure_builtin_tools, is_builtin
from mnemo.tools.schema_gen import TOOL_NAME, ToolSourceError, given_or_generated

SOURCE_TYPES = ("python", "typescript")
# Older Letta releases stored "json" for Python tools whose schema was given as JSON (real files have it).
SOURCE_TYPE_ALIASES = {"json": "python"}


class ToolImportError(ValueError):
    """A tool of the file that cannot be brought in (the API answers 422, naming it)."""


async def import_tools(
    session: AsyncSession, tools: list[ToolSchema], override_existing: bool
) -> dict[str, str]:
    """Create or find every tool of the file; returns file id → database id."""
    mapping: dict[str, str] = {}
    builtin = [t for t in tools if is_builtin(t.name)]
    if builtin:
        ids = await ensure_builtin_tools(session, sorted({t.name for t in builtin}))
        by_name = dict(zip(sorted({t.name for t in builtin}), ids, strict=True))
        mapping |= {t.id: by_name[t.name] for t in builtin}
    for tool in tools:
        if is_builtin(tool.name):
            continue
        if tool.tool_type != "custom":
            # A valid file asking for a tool Mnemo has not built: not the file's fault (501, not 422).
            raise NotSupportedYet(
                f"tool {tool.name!r} ({tool.id}) is a Letta {tool.tool_type} tool that Mnemo does not provide "
                "yet; to import the agent without it, remove it from the file's `tools` and the agent's "
                "`tool_ids`, or replace it with a custom tool that has source_code"
            )
        mapping[tool.id] = await _custom_tool(session, tool, override_existing)
    return mapping


async def _custom_tool(session: AsyncSession, tool: ToolSchema, override_existing: bool) -> str:
    values = _row_values(tool)
    existing = (await session.exec(select(ToolRow).where(ToolRow.name == tool.name))).one_or_none()
    if existing is None:
        row = ToolRow(id=new_id("tool"), **values)
        session.add(row)
        await session.flush()
        return row.id
    if existing.tool_type != "custom":
        raise ToolImportError(
            f"tool {tool.name!r} ({tool.id}) has the name of an existing {existing.tool_type} tool; rename it"
        )
    if override_existing:
        for key, value in values.items():
            setattr(existing, key, value)
        session.add(existing)
        await session.flush()
    return existing.id


def _row_values(tool: ToolSchema) -> dict[str, Any]:
    if not tool.source_code:
        raise ToolImportError(f"custom tool {tool.name!r} ({tool.id}) has no source_code to create it from")
    source_type = SOURCE_TYPE_ALIASES.get(tool.source_type or "python", tool.source_type or "python")
    if source_type not in SOURCE_TYPES:
        raise ToolImportError(
            f"tool {tool.name!r} ({tool.id}) has source_type {source_type!r}; use one of {', '.join(SOURCE_TYPES)}"
        )
    schema = _schema(tool, source_type)
    return {
        "name": tool.name,
        "tool_type": "custom",
        "description": tool.description or schema.get("description"),
        "source_type": source_type,
        "source_code": tool.source_code,
        "json_schema": schema,
        "args_json_schema": tool.args_json_schema,
        "tags": list(tool.tags),
        "return_char_limit": tool.return_char_limit or DEFAULT_RETURN_CHAR_LIMIT,
        "pip_requirements": tool.pip_requirements,
        "npm_requirements": tool.npm_requirements,
        "default_requires_approval": bool(tool.default_requires_approval),
        "enable_parallel_execution": bool(tool.enable_parallel_execution),
        "metadata_": tool.metadata_ or None,
    }


def _schema(tool: ToolSchema, source_type: str) -> dict[str, Any]:
    """The file's JSON schema (checked as `POST /v1/tools` checks one), else one generated from source."""
    if not TOOL_NAME.match(tool.name):
        raise ToolImportError(
            f"tool {tool.name!r} ({tool.id}) must be 1-64 ASCII letters, digits, '_' or '-'"
        )
    try:
        return given_or_generated(tool.source_code or "", source_type, tool.json_schema, tool.name)
    except ToolSourceError as exc:
        raise ToolImportError(f"tool {tool.name!r} ({tool.id}): {exc}") from exc
