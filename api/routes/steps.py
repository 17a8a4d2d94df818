"""Steps (`/v1/steps`): list across runs, retrieve, and a step's messages.

A step is one model call of a run (plus the tool calls it asked for). Mnemo stores no step feedback,
tags, traces, metrics or billing transactions, so the routes for those, and the list filters on
them, answer 501 rather than a result that would look like "nothing matched".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import serializers
from api.deps import row_or_404, session
from api.errors import not_supported
from api.pagination import Order, paginate
from api.routes.runs import letta_message_page
from mnemo.store.tables import MessageRow, RunRow, StepRow

router = APIRouter(prefix="/steps", tags=["steps"])


async def get_step_row(s: AsyncSession, step_id: str) -> StepRow:
    return await row_or_404(s, StepRow, step_id, f"Step {step_id} not found")


def _when(param: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise HTTPException(
            422, f"{param}: {value!r} is not an ISO 8601 datetime (e.g. 2025-01-29T15:01:19-08:00)"
        ) from exc
    # A time without an offset is read as UTC, the zone the server stores.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _unsupported_filters(
    feedback: str | None,
    has_feedback: bool | None,
    tags: list[str] | None,
    trace_ids: list[str] | None,
    project_id: str | None,
) -> None:
    # Each of these would narrow the list by something Mnemo does not record, so an empty page
    # would be a wrong answer, not a true one.
    if feedback is not None or has_feedback is not None:
        raise not_supported("Step feedback is not supported yet, so steps cannot be filtered by feedback")
    if tags:
        raise not_supported("Step tags are not supported yet, so steps cannot be filtered by tags")
    if trace_ids:
        raise not_supported("Step traces are not supported yet, so steps cannot be filtered by trace_ids")
    if project_id:
        raise not_supported("Projects are not supported, so steps cannot be filtered by project_id")


@router.get("/", summary="List steps")
async def list_steps(
    before: str | None = None,
    after: str | None = None,
    limit: int = Query(50, ge=1, le=1000),
    order: Order = "desc",
    order_by: Literal["created_at"] = "created_at",
    start_date: str | None = Query(None, description="Steps created at or after this ISO datetime"),
    end_date: str | None = Query(None, description="Steps created at or before this ISO datetime"),
    model: str | None = Query(None, description="The name of the model used for the step"),
    agent_id: str | None = None,
    trace_ids: list[str] | None = Query(default=None),
    feedback: Literal["positive", "negative"] | None = None,
    has_feedback: bool | None = None,
    tags: list[str] | None = Query(default=None),
    project_id: str | None = None,
    s: AsyncSession = Depends(session),
) -> list[dict[str, Any]]:
    _unsupported_filters(feedback, has_feedback, tags, trace_ids, project_id)
    conds: list[Any] = []
    if agent_id:
        conds.append(StepRow.agent_id == agent_id)
    if model:
        conds.append(StepRow.model == model)
    start, end = _when("start_date", start_date), _when("end_date", end_date)
    if start is not None:
        conds.append(col(StepRow.created_at) >= start)
    if end is not None:
        conds.append(col(StepRow.created_at) <= end)
    rows = await paginate(
        s,
        select(StepRow).where(*conds),
        StepRow,
        after=after,
        before=before,
        limit=limit,
        order=order,
        what="Step",
    )
    return [serializers.step(r) for r in rows]


@router.get("/{step_id}", summary="Retrieve a step")
async def retrieve_step(step_id: str, s: AsyncSession = Depends(session)) -> dict[str, Any]:
    return serializers.step(await get_step_row(s, step_id))


@router.get("/{step_id}/messages", summary="List the messages a step produced")
async def list_step_messages(
    step_id: str,
    before: str | None = None,
    after: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    order: Order = "asc",
    order_by: Literal["created_at"] = "created_at",
    s: AsyncSession = Depends(session),
) -> list[dict[str, Any]]:
    step = await get_step_row(s, step_id)
    run = await s.get(RunRow, step.run_id)
    stmt = select(MessageRow).where(MessageRow.step_id == step_id)
    return await letta_message_page(s, stmt, run, after=after, before=before, limit=limit, order=order)


@router.get("/{step_id}/metrics", summary="A step's timing metrics (not supported yet)")
async def retrieve_step_metrics(step_id: str, s: AsyncSession = Depends(session)) -> dict[str, Any]:
    await get_step_row(s, step_id)
    raise not_supported("Step metrics are not supported yet; a run's timing is on GET /v1/runs/{run_id}")


@router.get("/{step_id}/trace", summary="A step's provider trace (not supported yet)")
async def retrieve_step_trace(step_id: str, s: AsyncSession = Depends(session)) -> dict[str, Any]:
    await get_step_row(s, step_id)
    raise not_supported("Step provider traces are not supported yet")


class StepFeedback(BaseModel):
    feedback: Literal["positive", "negative"] | None = None
    tags: list[str] | None = None


@router.patch("/{step_id}/feedback", summary="Rate a step (not supported yet)")
async def update_step_feedback(
    step_id: str, body: StepFeedback, s: AsyncSession = Depends(session)
) -> dict[str, Any]:
    await get_step_row(s, step_id)
    raise not_supported("Step feedback is not supported yet")


@router.patch(
    "/{step_id}/transaction/{transaction_id}", summary="Set a step's billing transaction (not supported)"
)
async def update_step_transaction_id(
    step_id: str, transaction_id: str, s: AsyncSession = Depends(session)
) -> dict[str, Any]:
    await get_step_row(s, step_id)
    raise not_supported("Step billing transactions are not supported: Mnemo has no billing")
