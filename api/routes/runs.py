"""Runs (`/v1/runs`): list, retrieve, a run's messages, steps and usage, and resume (a Mnemo addition).

`POST /v1/runs/{id}/resume` continues a failed or interrupted run from its last persisted step, in
its agent's queue; completed steps are not repeated.
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import serializers
from api.deps import Services, get_services, row_or_404, session
from api.errors import conflict, not_supported
from api.pagination import Order, message_page, paginate
from mnemo.runtime.letta_messages import assistant_options, to_letta_messages
from mnemo.store.tables import RUN_STATUSES, AgentRow, MessageRow, RunRow, StepRow

router = APIRouter(prefix="/runs", tags=["runs"])

ACTIVE_STATUSES = ("created", "running")


async def get_run_row(s: AsyncSession, run_id: str) -> RunRow:
    return await row_or_404(s, RunRow, run_id, f"Run {run_id} not found")


@router.get("/", summary="List runs")
async def list_runs(
    agent_id: str | None = None,
    agent_ids: list[str] | None = Query(default=None, deprecated=True),
    statuses: list[str] | None = Query(default=None),
    background: bool | None = None,
    stop_reason: str | None = None,
    conversation_id: str | None = None,
    active: bool = False,
    ascending: bool | None = Query(default=None, deprecated=True),
    before: str | None = None,
    after: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    order: Order = "desc",
    order_by: Literal["created_at"] = "created_at",
    s: AsyncSession = Depends(session),
) -> list[dict[str, Any]]:
    if conversation_id:
        raise not_supported(
            "Conversations are not supported yet, so runs cannot be filtered by conversation_id"
        )
    conds: list[Any] = []
    agents = ([agent_id] if agent_id else []) + list(agent_ids or [])
    if agents:
        found = set((await s.exec(select(AgentRow.id).where(col(AgentRow.id).in_(agents)))).all())
        missing = [a for a in agents if a not in found]
        if missing:
            raise HTTPException(404, f"Agent {missing[0]} not found")
        conds.append(col(RunRow.agent_id).in_(agents))
    wanted = [v.strip() for item in statuses or [] for v in item.split(",") if v.strip()]
    bad = [v for v in wanted if v not in RUN_STATUSES]
    if bad:
        raise HTTPException(
            422, f"statuses: invalid run status {bad[0]!r}; valid statuses are {', '.join(RUN_STATUSES)}"
        )
    if active:
        wanted = [v for v in wanted if v in ACTIVE_STATUSES] if wanted else list(ACTIVE_STATUSES)
        if not wanted:
            return []
    if wanted:
        conds.append(col(RunRow.status).in_(wanted))
    if background is not None:
        conds.append(RunRow.background == background)
    if stop_reason:
        conds.append(RunRow.stop_reason == stop_reason)
    if ascending is not None and order == "desc":
        order = (
            "asc" if ascending else "desc"
        )  # the deprecated flag, when the new one was left at its default
    rows = await paginate(
        s,
        select(RunRow).where(*conds),
        RunRow,
        after=after,
        before=before,
        limit=limit,
        order=order,
        what="Run",
    )
    return [serializers.run(r) for r in rows]


@router.get("/{run_id}", summary="Retrieve a run")
async def retrieve_run(run_id: str, s: AsyncSession = Depends(session)) -> dict[str, Any]:
    return serializers.run(await get_run_row(s, run_id))


@router.get(
    "/{run_id}/messages", summary="List a run's messages (its input and everything the agent produced)"
)
async def list_run_messages(
    run_id: str,
    before: str | None = None,
    after: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    order: Order = "asc",
    order_by: Literal["created_at"] = "created_at",
    s: AsyncSession = Depends(session),
) -> list[dict[str, Any]]:
    run = await get_run_row(s, run_id)
    stmt = select(MessageRow).where(MessageRow.run_id == run_id)
    return await letta_message_page(s, stmt, run, after=after, before=before, limit=limit, order=order)


async def letta_message_page(
    s: AsyncSession,
    stmt: Any,
    run: RunRow | None,
    *,
    after: str | None,
    before: str | None,
    limit: int,
    order: Order,
) -> list[dict[str, Any]]:
    """A page of a run's messages (`stmt` selects MessageRow), shown as Letta messages: as the agent's
    type and the run's request (use_assistant_message) ask."""
    agent = await s.get(AgentRow, run.agent_id) if run is not None else None
    agent_type = agent.agent_type if agent else "letta_v1_agent"
    rows = await message_page(s, stmt, after=after, before=before, limit=limit, order=order)
    shown = assistant_options(run.request_config if run is not None else None)
    return [m for r in rows for m in to_letta_messages(r, agent_type, **shown)]


@router.get("/{run_id}/usage", summary="A run's token usage")
async def retrieve_run_usage(run_id: str, s: AsyncSession = Depends(session)) -> dict[str, Any]:
    await get_run_row(s, run_id)
    # Summed from the steps, so a run still in progress reports what it has used so far.
    prompt, completion, total = (
        await s.exec(
            select(
                sa.func.coalesce(sa.func.sum(StepRow.prompt_tokens), 0),
                sa.func.coalesce(sa.func.sum(StepRow.completion_tokens), 0),
                sa.func.coalesce(sa.func.sum(StepRow.total_tokens), 0),
            ).where(StepRow.run_id == run_id)
        )
    ).one()
    return {
        "prompt_tokens": int(prompt or 0),
        "completion_tokens": int(completion or 0),
        "total_tokens": int(total or 0),
        "cached_tokens": None,
        "cache_read_tokens": None,
        "cache_creation_tokens": None,
        "reasoning_tokens": None,
    }


@router.get("/{run_id}/steps", summary="List a run's steps")
async def list_run_steps(
    run_id: str,
    before: str | None = None,
    after: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    order: Order = "desc",
    order_by: Literal["created_at"] = "created_at",
    s: AsyncSession = Depends(session),
) -> list[dict[str, Any]]:
    await get_run_row(s, run_id)
    stmt = select(StepRow).where(StepRow.run_id == run_id)
    rows = await paginate(
        s,
        stmt,
        StepRow,
        after=after,
        before=before,
        limit=limit,
        order=order,
        what="Step",
        keys=("step_index",),
    )
    return [serializers.step(r) for r in rows]


@router.post("/{run_id}/resume", summary="Resume a failed or interrupted run from its last completed step")
async def resume_run(run_id: str, services: Services = Depends(get_services)) -> dict[str, Any]:
    try:
        await services.runs.resume(run_id)
    except LookupError as exc:
        raise HTTPException(404, f"Run {run_id} not found") from exc
    except ValueError as exc:  # completed, cancelled or still running: nothing to resume
        raise conflict(str(exc)) from exc
    async with services.db.session() as s:
        return serializers.run(await get_run_row(s, run_id))
