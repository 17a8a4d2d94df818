"""Agents, their memory blocks (with edit history) and the agent↔block links."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from mnemo.store.tables.base import (
    MAPPER_ARGS,
    CreatedAt,
    Timestamps,
    bool_field,
    check_in,
    jsonb,
    metadata_field,
    tags_field,
    text_field,
)

BLOCK_ACTOR_TYPES = ("agent", "user", "system")

# Letta's CORE_MEMORY_PERSONA/HUMAN_CHAR_LIMIT; callers normally pass the limit explicitly.
DEFAULT_BLOCK_LIMIT = 20000


class AgentRow(Timestamps, table=True):
    __tablename__ = "agents"
    __table_args__ = (
        sa.Index("ix_agents_name", "name"),
        sa.Index("ix_agents_tags", "tags", postgresql_using="gin"),
    )
    __mapper_args__ = MAPPER_ARGS

    id: str = Field(primary_key=True)
    name: str
    agent_type: str = Field(default="letta_v1_agent", sa_column_kwargs={"server_default": "letta_v1_agent"})
    system: str = text_field("")
    description: str | None = text_field(nullable=True)
    model: str | None = None  # handle, "provider/model"
    embedding: str | None = None  # handle
    llm_config: dict[str, Any] | None = jsonb()
    embedding_config: dict[str, Any] | None = jsonb()
    tool_rules: list[dict[str, Any]] = jsonb(list, server_default="[]")
    # The in-context window, in order (system message first), as in Letta.
    message_ids: list[str] = jsonb(list, server_default="[]")
    tags: list[str] = tags_field()
    metadata_: dict[str, Any] | None = metadata_field()
    timezone: str = Field(default="UTC", sa_column_kwargs={"server_default": "UTC"})
    message_buffer_autoclear: bool = bool_field()
    enable_sleeptime: bool = bool_field()
    # Environment variables for tool sandboxes; stored as given (no encryption at rest yet).
    secrets: dict[str, Any] | None = jsonb()
    compaction_settings: dict[str, Any] | None = jsonb()
    last_run_completion: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    last_run_duration_ms: int | None = Field(default=None, sa_type=sa.BigInteger)
    last_stop_reason: str | None = None


class BlockRow(Timestamps, table=True):
    __tablename__ = "blocks"
    # (id, label) is unique so that agents_blocks can reference it: a relabelled block carries
    # its new label into every link (ON UPDATE CASCADE), where the per-agent uniqueness is checked.
    __table_args__ = (sa.UniqueConstraint("id", "label", name="uq_blocks_id_label"),)
    __mapper_args__ = MAPPER_ARGS

    id: str = Field(primary_key=True)
    label: str
    value: str = text_field("")
    limit: int = Field(default=DEFAULT_BLOCK_LIMIT)
    description: str | None = text_field(nullable=True)
    read_only: bool = bool_field()
    hidden: bool = bool_field()
    is_template: bool = bool_field()
    template_name: str | None = None
    preserve_on_migration: bool = bool_field()
    metadata_: dict[str, Any] | None = metadata_field()
    tags: list[str] = tags_field()
    # Incremented on each edit; the block_history row of an edit carries the same version.
    version: int = Field(default=1, sa_column_kwargs={"server_default": sa.text("1")})


class AgentBlockRow(CreatedAt, table=True):
    __tablename__ = "agents_blocks"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["block_id", "block_label"],
            ["blocks.id", "blocks.label"],
            name="fk_agents_blocks_block",
            ondelete="CASCADE",
            onupdate="CASCADE",
        ),
        sa.UniqueConstraint("agent_id", "block_label", name="uq_agents_blocks_agent_label"),
        sa.Index("ix_agents_blocks_block_id", "block_id"),
    )
    __mapper_args__ = MAPPER_ARGS

    agent_id: str = Field(primary_key=True, foreign_key="agents.id", ondelete="CASCADE")
    block_id: str = Field(primary_key=True)
    block_label: str


class BlockHistoryRow(CreatedAt, table=True):
    __tablename__ = "block_history"
    __table_args__ = (
        sa.UniqueConstraint("block_id", "version", name="uq_block_history_block_version"),
        check_in("actor_type", BLOCK_ACTOR_TYPES, "ck_block_history_actor_type"),
    )
    __mapper_args__ = MAPPER_ARGS

    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    block_id: str = Field(foreign_key="blocks.id", ondelete="CASCADE")
    version: int
    label: str
    value: str = text_field()
    description: str | None = text_field(nullable=True)
    limit: int
    actor_type: str
    actor_id: str | None = None
    tool_call_id: str | None = None
