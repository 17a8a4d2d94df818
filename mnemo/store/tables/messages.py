"""Messages: the agent's transcript (recall memory), with full-text and vector search columns."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from mnemo.store.tables.base import (
    MAPPER_ARGS,
    Timestamps,
    add_search_columns,
    bool_field,
    check_in,
    embedding_dim_field,
    embedding_field,
    jsonb,
    text_field,
)

MESSAGE_ROLES = ("system", "user", "assistant", "tool", "approval", "summary")


class MessageRow(Timestamps, table=True):
    __tablename__ = "messages"
    # (agent_id, seq) also serves every lookup by agent_id alone, so there is no separate index.
    __table_args__ = (
        sa.UniqueConstraint("seq", name="uq_messages_seq"),
        sa.Index("ix_messages_agent_id_seq", "agent_id", "seq"),
        # A retried request re-sends its messages' otids: one run per otid per agent (migration 0003).
        sa.Index(
            "uq_messages_agent_otid",
            "agent_id",
            "otid",
            unique=True,
            postgresql_where=sa.text("otid IS NOT NULL"),
        ),
        check_in("role", MESSAGE_ROLES, "ck_messages_role"),
    )
    __mapper_args__ = MAPPER_ARGS

    id: str = Field(primary_key=True)
    agent_id: str = Field(foreign_key="agents.id", ondelete="CASCADE")
    # Total order of messages, assigned by the database on insert.
    seq: int = Field(default=None, sa_type=sa.BigInteger, nullable=False, sa_column_args=[sa.Identity()])
    role: str
    # Content parts, e.g. [{"type": "text", "text": "..."}].
    content: list[dict[str, Any]] = jsonb(list, server_default="[]")
    # Plain text of the message, for full-text search (the generated `fts` column reads it).
    text: str | None = text_field(nullable=True)
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = jsonb()  # OpenAI shape
    tool_call_id: str | None = Field(default=None, index=True)
    tool_returns: list[dict[str, Any]] | None = jsonb()
    step_id: str | None = Field(default=None, index=True)
    run_id: str | None = Field(default=None, index=True)
    otid: str | None = None
    sender_id: str | None = None
    group_id: str | None = None
    is_err: bool = bool_field()
    model: str | None = None
    embedding: list[float] | None = embedding_field()
    embedding_dim: int | None = embedding_dim_field()


messages_fts = add_search_columns(SQLModel.metadata.tables["messages"])
