"""Runs (one user request each), their steps, and the per-run event log that SSE streams replay."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from mnemo.store.tables.base import (
    MAPPER_ARGS,
    CreatedAt,
    Timestamps,
    bool_field,
    check_in,
    jsonb,
    metadata_field,
    text_field,
)

RUN_STATUSES = ("created", "running", "completed", "failed", "cancelled")
STEP_STATUSES = ("pending", "success", "failed")


def _timestamp() -> Any:
    return Field(default=None, sa_type=sa.DateTime(timezone=True), nullable=True)


class RunRow(Timestamps, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        sa.Index("ix_runs_agent_id", "agent_id"),
        check_in("status", RUN_STATUSES, "ck_runs_status"),
    )
    __mapper_args__ = MAPPER_ARGS

    id: str = Field(primary_key=True)
    agent_id: str = Field(foreign_key="agents.id", ondelete="CASCADE")
    status: str = Field(default="created", sa_column_kwargs={"server_default": "created"})
    stop_reason: str | None = None
    background: bool = bool_field()
    metadata_: dict[str, Any] | None = metadata_field()
    request_config: dict[str, Any] | None = jsonb()
    callback_url: str | None = text_field(nullable=True)
    callback_sent_at: datetime | None = _timestamp()
    callback_status_code: int | None = None
    callback_error: str | None = text_field(nullable=True)
    completed_at: datetime | None = _timestamp()
    ttft_ns: int | None = Field(default=None, sa_type=sa.BigInteger)
    total_duration_ns: int | None = Field(default=None, sa_type=sa.BigInteger)
    usage: dict[str, Any] | None = jsonb()
    max_steps: int | None = None
    # Set by a cancel request; the run's next step sees it and stops the run (migration 0002).
    cancel_requested_at: datetime | None = _timestamp()


class StepRow(Timestamps, table=True):
    __tablename__ = "steps"
    # The unique (run_id, step_index) is also the index for a run's steps; it is the step's
    # idempotency key.
    __table_args__ = (
        sa.UniqueConstraint("run_id", "step_index", name="uq_steps_run_step_index"),
        sa.Index("ix_steps_agent_id", "agent_id"),
        check_in("status", STEP_STATUSES, "ck_steps_status"),
    )
    __mapper_args__ = MAPPER_ARGS

    id: str = Field(primary_key=True)
    run_id: str = Field(foreign_key="runs.id", ondelete="CASCADE")
    agent_id: str
    step_index: int
    status: str = Field(default="pending", sa_column_kwargs={"server_default": "pending"})
    provider_name: str | None = None
    model: str | None = None
    model_handle: str | None = None
    context_window_limit: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    finish_reason: str | None = None
    stop_reason: str | None = None
    # The small result record a retried step replays instead of calling the model again.
    outcome: dict[str, Any] | None = jsonb()
    error_type: str | None = None
    error_data: dict[str, Any] | None = jsonb()
    completed_at: datetime | None = _timestamp()


class RunEventRow(CreatedAt, table=True):
    __tablename__ = "run_events"
    __mapper_args__ = MAPPER_ARGS

    run_id: str = Field(primary_key=True, foreign_key="runs.id", ondelete="CASCADE")
    # Per-run, 1-based, assigned by the writer; SSE resumes with `starting_after=<seq_id>`.
    seq_id: int = Field(primary_key=True)
    event: dict[str, Any] = Field(sa_type=JSONB, nullable=False)
