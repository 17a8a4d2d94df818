"""Archives (archival memory) and their passages, shared between agents through agents_archives."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from mnemo.store.tables.base import (
    MAPPER_ARGS,
    CreatedAt,
    Timestamps,
    add_search_columns,
    bool_field,
    embedding_dim_field,
    embedding_field,
    jsonb,
    metadata_field,
    tags_field,
    text_field,
)


class ArchiveRow(Timestamps, table=True):
    __tablename__ = "archives"
    __mapper_args__ = MAPPER_ARGS

    id: str = Field(primary_key=True)
    name: str
    description: str | None = text_field(nullable=True)
    embedding_config: dict[str, Any] | None = jsonb()
    metadata_: dict[str, Any] | None = metadata_field()


class AgentArchiveRow(CreatedAt, table=True):
    __tablename__ = "agents_archives"
    __table_args__ = (
        sa.Index("ix_agents_archives_archive_id", "archive_id"),
        # At most one default archive (where archival_memory_insert writes) per agent.
        sa.Index(
            "uq_agents_archives_one_default",
            "agent_id",
            unique=True,
            postgresql_where=sa.text("is_default"),
        ),
    )
    __mapper_args__ = MAPPER_ARGS

    agent_id: str = Field(primary_key=True, foreign_key="agents.id", ondelete="CASCADE")
    archive_id: str = Field(primary_key=True, foreign_key="archives.id", ondelete="CASCADE")
    is_default: bool = bool_field()


class PassageRow(Timestamps, table=True):
    __tablename__ = "passages"
    __table_args__ = (
        sa.Index("ix_passages_archive_id", "archive_id"),
        sa.Index("ix_passages_created_at", "created_at"),
        sa.Index("ix_passages_tags", "tags", postgresql_using="gin"),
    )
    __mapper_args__ = MAPPER_ARGS

    id: str = Field(primary_key=True)
    archive_id: str = Field(foreign_key="archives.id", ondelete="CASCADE")
    text: str = text_field()
    embedding: list[float] | None = embedding_field()
    embedding_dim: int | None = embedding_dim_field()
    embedding_config: dict[str, Any] | None = jsonb()
    tags: list[str] = tags_field()
    metadata_: dict[str, Any] | None = metadata_field()


passages_fts = add_search_columns(SQLModel.metadata.tables["passages"])
