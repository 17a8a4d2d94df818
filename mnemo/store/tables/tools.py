"""Tools and the agent↔tool links."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from mnemo.store.tables.base import (
    MAPPER_ARGS,
    CreatedAt,
    Timestamps,
    bool_field,
    jsonb,
    metadata_field,
    tags_field,
    text_field,
)

# Letta's FUNCTION_RETURN_CHAR_LIMIT since 0.12.
DEFAULT_RETURN_CHAR_LIMIT = 50000


class ToolRow(Timestamps, table=True):
    __tablename__ = "tools"
    __table_args__ = (sa.UniqueConstraint("name", name="uq_tools_name"),)
    __mapper_args__ = MAPPER_ARGS

    id: str = Field(primary_key=True)
    name: str
    tool_type: str = Field(default="custom", sa_column_kwargs={"server_default": "custom"})
    description: str | None = text_field(nullable=True)
    source_type: str = Field(default="python", sa_column_kwargs={"server_default": "python"})
    source_code: str | None = text_field(nullable=True)
    json_schema: dict[str, Any] | None = jsonb()
    args_json_schema: dict[str, Any] | None = jsonb()
    tags: list[str] = tags_field()
    return_char_limit: int = Field(
        default=DEFAULT_RETURN_CHAR_LIMIT,
        sa_column_kwargs={"server_default": sa.text(str(DEFAULT_RETURN_CHAR_LIMIT))},
    )
    pip_requirements: list[dict[str, Any]] | None = jsonb()
    npm_requirements: list[dict[str, Any]] | None = jsonb()
    default_requires_approval: bool = bool_field()
    enable_parallel_execution: bool = bool_field()
    metadata_: dict[str, Any] | None = metadata_field()


class AgentToolRow(CreatedAt, table=True):
    __tablename__ = "agents_tools"
    __table_args__ = (sa.Index("ix_agents_tools_tool_id", "tool_id"),)
    __mapper_args__ = MAPPER_ARGS

    agent_id: str = Field(primary_key=True, foreign_key="agents.id", ondelete="CASCADE")
    tool_id: str = Field(primary_key=True, foreign_key="tools.id", ondelete="CASCADE")
