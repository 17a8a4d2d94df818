"""Initial schema: agents, blocks, messages, archival memory, tools, runs, steps, run events.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

Written by hand and frozen: it imports nothing from `mnemo`, so later changes to the tables
cannot change what this revision does. tests/integration/test_migrations.py checks that the
result matches the SQLModel tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import VECTOR
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HNSW_DIMS = (384, 768, 1024, 1536)
FTS = "to_tsvector('english', coalesce(text, ''))"


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def _updated_at() -> sa.Column:
    return sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def _tags() -> sa.Column:
    return sa.Column("tags", ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False)


def _metadata() -> sa.Column:
    return sa.Column("metadata", JSONB(), nullable=True)


def _flag(name: str) -> sa.Column:
    return sa.Column(name, sa.Boolean(), server_default=sa.false(), nullable=False)


def _check_in(column: str, values: Sequence[str], name: str) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=name)


def _search_columns() -> list[sa.Column]:
    """An embedding of any dimension, its generated dimension, and the generated tsvector."""
    return [
        sa.Column("embedding", VECTOR(), nullable=True),
        sa.Column("embedding_dim", sa.Integer(), sa.Computed("vector_dims(embedding)", persisted=True)),
        sa.Column("fts", TSVECTOR(), sa.Computed(FTS, persisted=True), nullable=True),
    ]


def _search_indexes(table: str) -> None:
    op.create_index(f"ix_{table}_fts", table, ["fts"], postgresql_using="gin")
    for dim in HNSW_DIMS:
        op.execute(
            f"CREATE INDEX ix_{table}_embedding_hnsw_{dim} ON {table} "
            f"USING hnsw ((embedding::vector({dim})) vector_cosine_ops) WHERE embedding_dim = {dim}"
        )


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")

    op.create_table(
        "agents",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("agent_type", sa.String(), server_default="letta_v1_agent", nullable=False),
        sa.Column("system", sa.Text(), server_default="", nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("embedding", sa.String(), nullable=True),
        sa.Column("llm_config", JSONB(), nullable=True),
        sa.Column("embedding_config", JSONB(), nullable=True),
        sa.Column("tool_rules", JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("message_ids", JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        _tags(),
        _metadata(),
        sa.Column("timezone", sa.String(), server_default="UTC", nullable=False),
        _flag("message_buffer_autoclear"),
        _flag("enable_sleeptime"),
        sa.Column("secrets", JSONB(), nullable=True),
        sa.Column("compaction_settings", JSONB(), nullable=True),
        sa.Column("last_run_completion", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_stop_reason", sa.String(), nullable=True),
        _created_at(),
        _updated_at(),
    )
    op.create_index("ix_agents_name", "agents", ["name"])
    op.create_index("ix_agents_tags", "agents", ["tags"], postgresql_using="gin")

    op.create_table(
        "blocks",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("value", sa.Text(), server_default="", nullable=False),
        sa.Column("limit", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        _flag("read_only"),
        _flag("hidden"),
        _flag("is_template"),
        sa.Column("template_name", sa.String(), nullable=True),
        _flag("preserve_on_migration"),
        _metadata(),
        _tags(),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        _created_at(),
        _updated_at(),
        # Referenced by agents_blocks(block_id, block_label), so relabelling cascades to the links.
        sa.UniqueConstraint("id", "label", name="uq_blocks_id_label"),
    )

    op.create_table(
        "agents_blocks",
        sa.Column("agent_id", sa.String(), sa.ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("block_id", sa.String(), primary_key=True),
        sa.Column("block_label", sa.String(), nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["block_id", "block_label"],
            ["blocks.id", "blocks.label"],
            name="fk_agents_blocks_block",
            ondelete="CASCADE",
            onupdate="CASCADE",
        ),
        sa.UniqueConstraint("agent_id", "block_label", name="uq_agents_blocks_agent_label"),
    )
    op.create_index("ix_agents_blocks_block_id", "agents_blocks", ["block_id"])

    op.create_table(
        "block_history",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("block_id", sa.String(), sa.ForeignKey("blocks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("limit", sa.Integer(), nullable=False),
        sa.Column("actor_type", sa.String(), nullable=False),
        sa.Column("actor_id", sa.String(), nullable=True),
        sa.Column("tool_call_id", sa.String(), nullable=True),
        _created_at(),
        sa.UniqueConstraint("block_id", "version", name="uq_block_history_block_version"),
        _check_in("actor_type", ("agent", "user", "system"), "ck_block_history_actor_type"),
    )

    op.create_table(
        "messages",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("agent_id", sa.String(), sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("content", JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("tool_calls", JSONB(), nullable=True),
        sa.Column("tool_call_id", sa.String(), nullable=True),
        sa.Column("tool_returns", JSONB(), nullable=True),
        sa.Column("step_id", sa.String(), nullable=True),
        sa.Column("run_id", sa.String(), nullable=True),
        sa.Column("otid", sa.String(), nullable=True),
        sa.Column("sender_id", sa.String(), nullable=True),
        sa.Column("group_id", sa.String(), nullable=True),
        _flag("is_err"),
        sa.Column("model", sa.String(), nullable=True),
        *_search_columns(),
        _created_at(),
        _updated_at(),
        sa.UniqueConstraint("seq", name="uq_messages_seq"),
        _check_in("role", ("system", "user", "assistant", "tool", "approval", "summary"), "ck_messages_role"),
    )
    op.create_index("ix_messages_agent_id_seq", "messages", ["agent_id", "seq"])
    op.create_index("ix_messages_tool_call_id", "messages", ["tool_call_id"])
    op.create_index("ix_messages_step_id", "messages", ["step_id"])
    op.create_index("ix_messages_run_id", "messages", ["run_id"])
    _search_indexes("messages")

    op.create_table(
        "archives",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("embedding_config", JSONB(), nullable=True),
        _metadata(),
        _created_at(),
        _updated_at(),
    )

    op.create_table(
        "agents_archives",
        sa.Column("agent_id", sa.String(), sa.ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
        sa.Column(
            "archive_id", sa.String(), sa.ForeignKey("archives.id", ondelete="CASCADE"), primary_key=True
        ),
        _flag("is_default"),
        _created_at(),
    )
    op.create_index("ix_agents_archives_archive_id", "agents_archives", ["archive_id"])
    op.create_index(
        "uq_agents_archives_one_default",
        "agents_archives",
        ["agent_id"],
        unique=True,
        postgresql_where=sa.text("is_default"),
    )

    op.create_table(
        "passages",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column(
            "archive_id", sa.String(), sa.ForeignKey("archives.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("embedding_config", JSONB(), nullable=True),
        _tags(),
        _metadata(),
        *_search_columns(),
        _created_at(),
        _updated_at(),
    )
    op.create_index("ix_passages_archive_id", "passages", ["archive_id"])
    op.create_index("ix_passages_created_at", "passages", ["created_at"])
    op.create_index("ix_passages_tags", "passages", ["tags"], postgresql_using="gin")
    _search_indexes("passages")

    op.create_table(
        "tools",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("tool_type", sa.String(), server_default="custom", nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("source_type", sa.String(), server_default="python", nullable=False),
        sa.Column("source_code", sa.Text(), nullable=True),
        sa.Column("json_schema", JSONB(), nullable=True),
        sa.Column("args_json_schema", JSONB(), nullable=True),
        _tags(),
        sa.Column("return_char_limit", sa.Integer(), server_default=sa.text("50000"), nullable=False),
        sa.Column("pip_requirements", JSONB(), nullable=True),
        sa.Column("npm_requirements", JSONB(), nullable=True),
        _flag("default_requires_approval"),
        _flag("enable_parallel_execution"),
        _metadata(),
        _created_at(),
        _updated_at(),
        sa.UniqueConstraint("name", name="uq_tools_name"),
    )

    op.create_table(
        "agents_tools",
        sa.Column("agent_id", sa.String(), sa.ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tool_id", sa.String(), sa.ForeignKey("tools.id", ondelete="CASCADE"), primary_key=True),
        _created_at(),
    )
    op.create_index("ix_agents_tools_tool_id", "agents_tools", ["tool_id"])

    op.create_table(
        "runs",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("agent_id", sa.String(), sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(), server_default="created", nullable=False),
        sa.Column("stop_reason", sa.String(), nullable=True),
        _flag("background"),
        _metadata(),
        sa.Column("request_config", JSONB(), nullable=True),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("callback_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("callback_status_code", sa.Integer(), nullable=True),
        sa.Column("callback_error", sa.Text(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ttft_ns", sa.BigInteger(), nullable=True),
        sa.Column("total_duration_ns", sa.BigInteger(), nullable=True),
        sa.Column("usage", JSONB(), nullable=True),
        sa.Column("max_steps", sa.Integer(), nullable=True),
        _created_at(),
        _updated_at(),
        _check_in("status", ("created", "running", "completed", "failed", "cancelled"), "ck_runs_status"),
    )
    op.create_index("ix_runs_agent_id", "runs", ["agent_id"])

    op.create_table(
        "steps",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("run_id", sa.String(), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), server_default="pending", nullable=False),
        sa.Column("provider_name", sa.String(), nullable=True),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("model_handle", sa.String(), nullable=True),
        sa.Column("context_window_limit", sa.Integer(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("total_tokens", sa.Integer(), nullable=True),
        sa.Column("finish_reason", sa.String(), nullable=True),
        sa.Column("stop_reason", sa.String(), nullable=True),
        sa.Column("outcome", JSONB(), nullable=True),
        sa.Column("error_type", sa.String(), nullable=True),
        sa.Column("error_data", JSONB(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        _updated_at(),
        sa.UniqueConstraint("run_id", "step_index", name="uq_steps_run_step_index"),
        _check_in("status", ("pending", "success", "failed"), "ck_steps_status"),
    )
    op.create_index("ix_steps_agent_id", "steps", ["agent_id"])

    op.create_table(
        "run_events",
        sa.Column("run_id", sa.String(), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("event", JSONB(), nullable=False),
        _created_at(),
    )


def downgrade() -> None:
    # Indexes, generated columns and constraints go with their tables. The `vector` extension
    # stays: other schemas in the database may use it.
    for table in (
        "run_events",
        "steps",
        "runs",
        "agents_tools",
        "tools",
        "passages",
        "agents_archives",
        "archives",
        "messages",
        "block_history",
        "agents_blocks",
        "blocks",
        "agents",
    ):
        op.drop_table(table)
