"""Run lifecycle in Postgres: create (with its input messages), start or resume, finish."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.ids import new_id
from mnemo.runtime import events
from mnemo.runtime.context import append_to_context, load_agent
from mnemo.schemas.runs import FinishInput, FinishOutcome, ResumePoint, RunInput, run_status_for
from mnemo.store.db import Database
from mnemo.store.tables import AgentRow, MessageRow, RunRow, StepRow

TERMINAL_STATUSES = ("completed", "failed", "cancelled")


class InputMessage(dict[str, Any]):
    """`{"role": "user"|"system"|"assistant", "content": str | [parts], "otid"?, "name"?, "sender_id"?}`."""


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [p if isinstance(p, dict) else {"type": "text", "text": str(p)} for p in content]


async def create_run(
    session: AsyncSession,
    agent_id: str,
    messages: list[dict[str, Any]],
    *,
    max_steps: int = 50,
    request_config: dict[str, Any] | None = None,
    background: bool = False,
    callback_url: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> RunRow:
    """Record a run and its input messages; the messages enter the context when the run starts."""
    await load_agent(session, agent_id)
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
            )
        )
    await session.flush()
    return run


async def start_run(db: Database, inp: RunInput) -> ResumePoint:
    async with db.transaction() as s:
        run = (await s.exec(select(RunRow).where(RunRow.id == inp.run_id).with_for_update())).one_or_none()
        if run is None:
            raise LookupError(f"run {inp.run_id} not found")
        if run.status in TERMINAL_STATUSES and not inp.resume:
            return ResumePoint(first_step=0)  # replayed start of a finished run
        inputs = (
            await s.exec(
                select(MessageRow.id)
                .where(
                    MessageRow.run_id == inp.run_id,
                    col(MessageRow.step_id).is_(None),
                    MessageRow.role != "tool",
                )
                .order_by(col(MessageRow.seq))
            )
        ).all()
        await append_to_context(s, inp.agent_id, list(inputs))
        run.status = "running"
        run.stop_reason = None
        run.completed_at = None
        s.add(run)
        last_ok = (
            await s.exec(
                select(sa.func.max(StepRow.step_index)).where(
                    StepRow.run_id == inp.run_id, StepRow.status == "success"
                )
            )
        ).one()
    return ResumePoint(first_step=int(last_ok) if last_ok is not None else 0)


async def finish_run(db: Database, inp: FinishInput) -> FinishOutcome:
    status = run_status_for(inp.stop_reason)
    async with db.transaction() as s:
        run = (await s.exec(select(RunRow).where(RunRow.id == inp.run_id).with_for_update())).one_or_none()
        if run is None:
            raise LookupError(f"run {inp.run_id} not found")
        if run.status == status and run.stop_reason == inp.stop_reason:
            return FinishOutcome(callback_url=run.callback_url)  # a retried finish
        totals = (
            await s.exec(
                select(
                    sa.func.coalesce(sa.func.sum(StepRow.prompt_tokens), 0),
                    sa.func.coalesce(sa.func.sum(StepRow.completion_tokens), 0),
                    sa.func.coalesce(sa.func.sum(StepRow.total_tokens), 0),
                    sa.func.count(),
                ).where(StepRow.run_id == inp.run_id, StepRow.status == "success")
            )
        ).one()
        now = datetime.now(UTC)
        usage = {
            "message_type": "usage_statistics",
            "prompt_tokens": int(totals[0]),
            "completion_tokens": int(totals[1]),
            "total_tokens": int(totals[2]),
            "step_count": int(totals[3]),
            "run_ids": [run.id],
        }
        run.status = status
        run.stop_reason = inp.stop_reason
        run.completed_at = now
        run.usage = usage
        run.total_duration_ns = int((now - run.created_at).total_seconds() * 1e9)
        if inp.error:
            run.metadata_ = {**(run.metadata_ or {}), "error": inp.error}
        s.add(run)
        await s.execute(
            sa.update(AgentRow)
            .where(col(AgentRow.id) == inp.agent_id)
            .values(
                last_run_completion=now,
                last_stop_reason=inp.stop_reason,
                last_run_duration_ms=run.total_duration_ns // 1_000_000,
            )
        )
        tail: list[dict[str, Any]] = []
        if inp.error:
            tail.append(
                {
                    "message_type": "error_message",
                    "run_id": run.id,
                    "error_type": _error_type(inp.stop_reason),
                    "message": inp.error,
                }
            )
        tail += [{"message_type": "stop_reason", "stop_reason": inp.stop_reason}, usage]
        await events.append(s, run.id, tail)
        return FinishOutcome(callback_url=run.callback_url)


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


def new_run_messages(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]
