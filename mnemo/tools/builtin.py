"""Letta's built-in tools as rows of the `tools` table, and the default tool sets per agent type."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.memory.tool_schemas import BUILTIN_TOOL_NAMES, tool_schema
from mnemo.store.tables import ToolRow

# Letta's tool_type per built-in tool (schemas/enums.py ToolType).
TOOL_TYPES: dict[str, str] = {
    "send_message": "letta_core",
    "conversation_search": "letta_core",
    "archival_memory_insert": "letta_core",
    "archival_memory_search": "letta_core",
    "core_memory_append": "letta_memory_core",
    "core_memory_replace": "letta_memory_core",
    "memory_replace": "letta_memory_core",
    "memory_insert": "letta_memory_core",
    "memory_rethink": "letta_sleeptime_core",
    "memory_finish_edits": "letta_sleeptime_core",
    "memory": "letta_memory_core",
}
BUILTIN_TYPES = frozenset(TOOL_TYPES.values())

# letta-compat §3.6. `memory_apply_patch` (memgpt_agent) is not built yet, so it is not attached.
DEFAULT_TOOLS: dict[str, tuple[str, ...]] = {
    "letta_v1_agent": ("conversation_search", "memory_replace", "memory_insert"),
    "memgpt_v2_agent": ("send_message", "conversation_search", "memory_replace", "memory_insert"),
    "memgpt_agent": (
        "send_message",
        "conversation_search",
        "core_memory_append",
        "core_memory_replace",
        "memory",
    ),
    "sleeptime_agent": ("memory_replace", "memory_insert", "memory_rethink", "memory_finish_edits"),
}
# Base tool rules (letta-compat §7.3): these end the loop; every other base tool continues it.
TERMINAL_BASE_TOOLS = frozenset({"send_message", "send_message_to_agent_async", "memory_finish_edits"})


def builtin_tool_id(name: str) -> str:
    # Deterministic, so every process agrees on the id without a lookup.
    return f"tool-{uuid.uuid5(uuid.NAMESPACE_URL, f'mnemo:builtin:{name}')}"


def is_builtin(name: str) -> bool:
    return name in BUILTIN_TOOL_NAMES


async def ensure_builtin_tools(
    session: AsyncSession, names: tuple[str, ...] | list[str] | None = None
) -> list[str]:
    """Upsert the built-in tool rows (schema refreshed from code, as Letta does at load) and return ids."""
    wanted = sorted(names if names is not None else BUILTIN_TOOL_NAMES)
    for name in wanted:
        schema = tool_schema(name)
        values = {
            "id": builtin_tool_id(name),
            "name": name,
            "tool_type": TOOL_TYPES[name],
            "description": schema["description"],
            "source_type": "python",
            "json_schema": schema,
            "tags": ["letta_core"],
        }
        stmt = insert(ToolRow).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[ToolRow.__table__.c.name],  # type: ignore[attr-defined]
            set_={"json_schema": stmt.excluded.json_schema, "description": stmt.excluded.description},
            where=sa.or_(
                ToolRow.__table__.c.json_schema.is_distinct_from(stmt.excluded.json_schema),  # type: ignore[attr-defined]
                ToolRow.__table__.c.description.is_distinct_from(stmt.excluded.description),  # type: ignore[attr-defined]
            ),
        )
        await session.execute(stmt)
    return [builtin_tool_id(n) for n in wanted]
