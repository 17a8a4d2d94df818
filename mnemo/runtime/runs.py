"""Run lifecycle in Postgres: create (with its input messages), start or resume, finish."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.ids import new_id
from mnemo.runtime import events
from mnemo.runtime.context import append_to_context
from mnemo.runtime.run_controls import run_controls
from mnemo.schemas.runs import FinishInput, FinishOutcome, ResumePoint, RunInput, run_status_for
from mnemo.store.db import Database
from mnemo.store.tables import AgentRow, MessageRow, RunRow, StepRow

TERMINAL_STATUSES = ("completed", "failed", "cancelled")


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [p if isinstance(p, dict) else {"type": "text", "text": str(p)} for p in content]


async def create_run(
    session: AsyncSession,
    agent: AgentRow,
    messages: list[dict[str, Any]],
    *,
    max_steps: int = 50,
    request_config: dict[str, Any] | None = None,
    background: bool = False,
    callback_url: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> RunRow:
    """Record a run and its input messages; the messages enter the context when the run starts. The
    caller loaded `agent` in this session (`load_agent`), which is what makes an unknown id a 404."""
    agent_id = agent.id
    run = RunRow(
        id=new_id("run"),
        agent_id=agent_id,
        status="created",
        background=background,
        request_config=request_config or {},
        callback_url=callback_url,
        metadata_=metadata,
        max_steps=max_steps,
    )
    session.add(run)
    await session.flush()
    for msg in messages:
        parts = _parts(msg.get("content", ""))
        text = "".join(p.get("text", "") for p in parts if p.get("type") == "text")
        session.add(
            MessageRow(
                id=new_id("message"),
                agent_id=agent_id,
                role=msg.get("role", "user"),
                content=parts,
                text=text or None,
                run_id=run.id,
                otid=msg.get("otid"),
                name=msg.get("name"),
                sender_id=msg.get("sender_id"),
                tool_returns=msg.get("approvals"),  # an approval answer's decisions
            )
        )
    await session.flush()
    return run


# The hot path's statements are built once: building and hashing an expression costs more CPU than
# the round trip it saves. Each reads everything its activity needs from one row lock.

# The run (locked), its input messages and its last successful step.
_START = (
    select(
        RunRow,
        select(sa.func.array_agg(aggregate_order_by(col(MessageRow.id), col(MessageRow.seq))))
        .where(
            MessageRow.run_id == sa.bindparam("run_id"),
            col(MessageRow.step_id).is_(None),
            MessageRow.role != "tool",
        )
        .scalar_subquery(),
        select(sa.func.max(StepRow.step_index))
        .where(StepRow.run_id == sa.bindparam("run_id"), StepRow.status == "success")
        .scalar_subquery(),
    )
    .where(RunRow.id == sa.bindparam("run_id"))
    .with_for_update(of=RunRow)
)

_MARK_RUNNING = sa.text(
    "UPDATE runs SET status = 'running', stop_reason = NULL, completed_at = NULL, updated_at = now() "
    "WHERE id = :run_id"
)

# The run (locked) and its successful steps' token totals.
_TOTALS = (
    select(
        sa.func.coalesce(sa.func.sum(StepRow.prompt_tokens), 0).label("prompt"),
        sa.func.coalesce(sa.func.sum(StepRow.completion_tokens), 0).label("completion"),
        sa.func.coalesce(sa.func.sum(StepRow.total_tokens), 0).label("total"),
        sa.func.count().label("step_count"),
    )
    .where(StepRow.run_id == RunRow.id, StepRow.status == "success")
    .lateral("totals")
)
_FINISH = (
    sa.select(
        col(RunRow.status),
        col(RunRow.stop_reason),
        col(RunRow.callback_url),
        col(RunRow.created_at),
        col(RunRow.metadata_),
        _TOTALS,
    )
    .join_from(RunRow, _TOTALS, sa.true())
    .where(col(RunRow.id) == sa.bindparam("run_id"))
    .with_for_update(of=RunRow)
)

# The run's outcome and the agent's last-run fields, in one statement.
_MARK_FINISHED = sa.text(
    """
    WITH agent AS (
        UPDATE agents SET last_run_completion = :now, last_stop_reason = :stop_reason,
            last_run_duration_ms = :duration_ms, updated_at = now()
        WHERE id = :agent_id
    )
    UPDATE runs SET status = :status, stop_reason = :stop_reason, completed_at = :now, usage = :usage,
        total_duration_ns = :duration_ns, metadata = coalesce(:metadata, metadata), updated_at = now()
    WHERE id = :run_id
    """
).bindparams(sa.bindparam("usage", type_=JSONB), sa.bindparam("metadata", type_=JSONB(none_as_null=True)))


async def start_run(db: Database, inp: RunInput) -> ResumePoint:
    async with db.transaction() as s:
        found = (await s.execute(_START, {"run_id": inp.run_id})).one_or_none()
        if found is None:
            raise LookupError(f"run {inp.run_id} not found")
        run, input_ids, last_ok = found
        if run.status in TERMINAL_STATUSES and not inp.resume:
            return ResumePoint(first_step=0)  # replayed start of a finished run
        await append_to_context(s, inp.agent_id, list(input_ids or []))
        await s.execute(_MARK_RUNNING, {"run_id": inp.run_id})
        for name, value in (("status", "running"), ("stop_reason", None), ("completed_at", None)):
            set_committed_value(run, name, value)  # what the row now holds, without a second write
        first_step = int(last_ok) if last_ok is not None else 0
        controls = await run_controls(s, run, first_step)
    return ResumePoint(first_step=first_step, **controls)


async def finish_run(db: Database, inp: FinishInput) -> FinishOutcome:
    status = run_status_for(inp.stop_reason)
    async with db.transaction() as s:
        found = (await s.execute(_FINISH, {"run_id": inp.run_id})).one_or_none()
        if found is None:
            raise LookupError(f"run {inp.run_id} not found")
        if found.status == status and found.stop_reason == inp.stop_reason:
            return FinishOutcome(callback_url=found.callback_url)  # a retried finish
        now = datetime.now(UTC)
        usage = {
            "message_type": "usage_statistics",
            "prompt_tokens": int(found.prompt),
            "completion_tokens": int(found.completion),
            "total_tokens": int(found.total),
            "step_count": int(found.step_count),
            "run_ids": [inp.run_id],
        }
        duration_ns = int((now - found.created_at).total_seconds() * 1e9)
        metadata = {**(found.metadata_ or {}), "error": inp.error} if inp.error else None
        await s.execute(
            _MARK_FINISHED,
            {
                "run_id": inp.run_id,
                "agent_id": inp.agent_id,
                "status": status,
                "stop_reason": inp.stop_reason,
                "now": now,
                "usage": usage,
                "duration_ns": duration_ns,
                "duration_ms": duration_ns // 1_000_000,
                "metadata": metadata,
            },
        )
        tail: list[dict[str, Any]] = []
        if inp.error:
            tail.append(
                {
                    "message_type": "error_message",
                    "run_id": inp.run_id,
                    "error_type": _error_type(inp.stop_reason),
                    "message": inp.error,
                }
            )
        tail += [{"message_type": "stop_reason", "stop_reason": inp.stop_reason}, usage]
        await events.append(s, inp.run_id, tail, run_locked=True)
        return FinishOutcome(callback_url=found.callback_url)


class StepState(NamedTuple):
    """What a step attempt needs to know of its row: whether an earlier attempt finished it."""

    status: str
    outcome: dict[str, Any] | None


# A step's state and its run's row, for a step about to call the model (no step the first time).
_STEP_AND_RUN = (
    select(RunRow, StepRow.status, StepRow.outcome)
    .outerjoin(StepRow, sa.and_(col(StepRow.run_id) == RunRow.id, col(StepRow.id) == sa.bindparam("step_id")))
    .where(RunRow.id == sa.bindparam("run_id"))
)

_BEGIN_STEP = sa.text(
    "INSERT INTO steps (id, run_id, agent_id, step_index, status) "
    "VALUES (:step_id, :run_id, :agent_id, :step_index, 'pending') ON CONFLICT (id) DO NOTHING"
)

# The step's state, with its row and its run's locked: the step's outcome is written once, and the
# run's event log is appended to in the same transaction.
_LOCK_STEP = (
    select(StepRow.status, StepRow.outcome)
    .join(RunRow, col(RunRow.id) == StepRow.run_id)
    .where(StepRow.id == sa.bindparam("step_id"))
    .with_for_update()
)

_COMPLETE_STEP = sa.text(
    "UPDATE steps SET status = 'success', model = :model, model_handle = :model_handle, "
    "provider_name = :provider_name, context_window_limit = :context_window_limit, "
    "prompt_tokens = :prompt_tokens, completion_tokens = :completion_tokens, total_tokens = :total_tokens, "
    "finish_reason = :finish_reason, outcome = :outcome, completed_at = now(), updated_at = now() "
    "WHERE id = :step_id"
).bindparams(sa.bindparam("outcome", type_=JSONB))


async def load_step(s: AsyncSession, run_id: str, step_id: str) -> tuple[StepState | None, RunRow | None]:
    """The step's state (None before its first attempt) and its run (None if there is no such run)."""
    found = (await s.execute(_STEP_AND_RUN, {"run_id": run_id, "step_id": step_id})).one_or_none()
    if found is None:
        return None, None
    run, status, outcome = found
    return (StepState(status, outcome) if status is not None else None), run


async def begin_step(s: AsyncSession, run_id: str, agent_id: str, step_id: str, step_index: int) -> None:
    """Record a pending step (nothing if a previous attempt did)."""
    await s.execute(
        _BEGIN_STEP, {"step_id": step_id, "run_id": run_id, "agent_id": agent_id, "step_index": step_index}
    )


async def lock_step(s: AsyncSession, step_id: str) -> StepState:
    """The step's state, its row locked with its run's (`events.append(..., run_locked=True)` relies on it)."""
    status, outcome = (await s.execute(_LOCK_STEP, {"step_id": step_id})).one()
    return StepState(status, outcome)


async def complete_step(
    s: AsyncSession,
    step_id: str,
    *,
    outcome: dict[str, Any],
    model: str,
    model_handle: str | None,
    provider_name: str | None,
    context_window_limit: int | None,
    prompt_tokens: int,
    completion_tokens: int,
    total_tokens: int,
    finish_reason: str | None,
) -> None:
    """Mark a step successful, with the outcome a retry replays and the model and usage it had."""
    await s.execute(
        _COMPLETE_STEP,
        {
            "step_id": step_id,
            "outcome": outcome,
            "model": model,
            "model_handle": model_handle,
            "provider_name": provider_name,
            "context_window_limit": context_window_limit,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": total_tokens,
            "finish_reason": finish_reason,
        },
    )


async def send_callback(db: Database, run_id: str, *, final_attempt: bool) -> None:
    """POST `{run_id, status, completed_at, metadata}` to the run's callback_url (Letta's payload) and
    record the outcome. Raises on failure so Temporal retries, except on the final attempt."""
    import httpx

    async with db.session() as s:
        run = await s.get(RunRow, run_id)
    if run is None or not run.callback_url:
        return
    payload = {
        "run_id": run.id,
        "status": run.status,
        "completed_at": run.completed_at.isoformat() if run.completed_at else None,
        "metadata": run.metadata_ or {},
    }
    code: int | None = None
    error: str | None = None
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:
            response = await http.post(run.callback_url, json=payload)
        code = response.status_code
        if response.status_code >= 300:
            error = f"callback answered HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        error = f"callback failed: {type(exc).__name__}: {exc}"
    async with db.transaction() as s:
        row = await s.get(RunRow, run_id)
        if row is not None:
            row.callback_sent_at = datetime.now(UTC)
            row.callback_status_code = code
            row.callback_error = error
            s.add(row)
    if error and not final_attempt:
        raise RuntimeError(error)


def _error_type(stop_reason: str) -> str:
    return {"llm_api_error": "llm_error", "cancelled": "internal_error"}.get(stop_reason, "internal_error")
