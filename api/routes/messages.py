"""Sending and listing an agent's messages (`/v1/agents/{id}/messages`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import serializers
from api.approvals import ApprovalCreate, ToolReturnCreate, infer_type, plan_input
from api.dedup import start_once
from api.deps import Services, get_services, session
from api.pagination import message_page
from api.routes.agents import get_agent_row
from api.runs import InputPlan
from api.streaming import sse_response, tail
from mnemo.runtime.approvals import pending_approval
from mnemo.runtime.letta_messages import assistant_options, shown_as, to_letta_messages
from mnemo.store.tables import AgentRow, MessageRow, RunRow

router = APIRouter(prefix="/agents", tags=["messages"])


def check_text_parts(content: Any) -> Any:
    # A text part's `text` becomes the stored message's text (joined as strings): a number or null there
    # was a 500.
    if isinstance(content, list):
        for i, part in enumerate(content):
            if part.get("type") == "text" and "text" in part and not isinstance(part["text"], str):
                raise ValueError(f"content[{i}].text must be a string")
    return content


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["message"] = "message"
    role: Literal["user", "system", "assistant"] = "user"
    content: str | list[dict[str, Any]]
    name: str | None = None
    otid: str | None = None
    sender_id: str | None = None

    _text_parts = field_validator("content")(check_text_parts)


class ClientTool(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None


class LettaRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    messages: (
        list[Annotated[MessageCreate | ApprovalCreate | ToolReturnCreate, Field(discriminator="type")]] | None
    ) = None
    # Tools the client runs itself: calls to them wait for the client's tool return (Letta).
    client_tools: list[ClientTool] | None = None
    input: str | list[dict[str, Any]] | None = None
    max_steps: int = Field(default=50, ge=1, le=10_000)
    include_return_message_types: list[str] | None = None
    streaming: bool = False
    stream_tokens: bool = False
    background: bool = False
    # Legacy (memgpt) agents: show `send_message` calls as assistant messages (Letta's defaults).
    use_assistant_message: bool = True
    assistant_message_tool_name: str = Field(default="send_message", min_length=1)
    assistant_message_tool_kwarg: str = Field(default="message", min_length=1)

    _text_parts = field_validator("input")(check_text_parts)
    _typed = field_validator("messages", mode="before")(
        lambda v: [infer_type(i) for i in v] if isinstance(v, list) else v
    )

    @model_validator(mode="after")
    def _one_input(self) -> LettaRequest:
        if (self.messages is None) == (self.input is None):
            raise ValueError("Exactly one of `messages` or `input` must be given")
        return self

    def input_messages(self) -> list[dict[str, Any]]:
        if self.input is not None:
            return [{"role": "user", "content": self.input}]
        return [
            m.model_dump(exclude_none=True, exclude={"type"})
            for m in self.messages or []
            if isinstance(m, MessageCreate)
        ]


# The messages a run produced, each with its agent's type (how Letta shows them), in one statement.
_RUN_MESSAGES = (
    select(
        MessageRow,
        select(AgentRow.agent_type).where(AgentRow.id == MessageRow.agent_id).scalar_subquery(),
    )
    .where(
        MessageRow.run_id == sa.bindparam("run_id"),
        col(MessageRow.step_id).is_not(None),
        MessageRow.role != "user",
    )
    .order_by(col(MessageRow.seq))
)


def run_messages_reader(
    types: list[str] | None,
) -> Callable[[AsyncSession, RunRow], Awaitable[list[dict[str, Any]]]]:
    """Reads a finished run's response messages (for `RunService.wait_and_read`)."""

    async def read(s: AsyncSession, run: RunRow) -> list[dict[str, Any]]:
        rows = (await s.exec(_RUN_MESSAGES, params={"run_id": run.id})).all()
        shown = assistant_options(run.request_config)
        out = [m for row, agent_type in rows for m in to_letta_messages(row, agent_type, **shown)]
        return [m for m in out if types is None or m["message_type"] in types]

    return read


def _assistant_choice(body: LettaRequest) -> dict[str, Any]:
    chosen = {
        "use": body.use_assistant_message,
        "tool": body.assistant_message_tool_name,
        "kwarg": body.assistant_message_tool_kwarg,
    }
    defaults = {"use": True, "tool": "send_message", "kwarg": "message"}
    return {} if chosen == defaults else {"assistant_message": chosen}


class LettaStreamingRequest(LettaRequest):
    include_pings: bool = True


class LettaAsyncRequest(LettaRequest):
    callback_url: str | None = None


def _check_streaming_options(body: LettaStreamingRequest) -> None:
    if not body.streaming and (body.stream_tokens or body.background or body.include_pings is False):
        raise HTTPException(422, "Streaming options set without streaming enabled")


async def _start(services: Services, agent_id: str, body: LettaRequest, **extra: Any) -> RunRow:
    items = list(body.messages or [])

    async def plan(s: AsyncSession) -> InputPlan:
        planned = await plan_input(s, agent_id, items, body.input_messages())
        if body.client_tools:
            planned.request_config["client_tools"] = [
                t.model_dump(exclude_none=True) for t in body.client_tools
            ]
        return planned

    # A retried request (same input otids) gets the run of its first attempt, not a second one.
    return await start_once(
        services,
        agent_id,
        [otid for item in items if (otid := item.otid)],
        lambda: services.runs.send_planned(
            agent_id,
            plan,
            max_steps=body.max_steps,
            request_config={
                "stream_tokens": body.stream_tokens,
                "include_return_message_types": body.include_return_message_types,
                **_assistant_choice(body),
            },
            **extra,
        ),
    )


def _stream(services: Services, run: RunRow, body: LettaStreamingRequest) -> Response:
    types = set(body.include_return_message_types) if body.include_return_message_types else None
    return sse_response(
        tail(
            services.runs,
            run.id,
            stream_tokens=body.stream_tokens,
            include_pings=body.include_pings,
            types=types,
        )
    )


@router.post(
    "/{agent_id}/messages", summary="Send a message; wait for the response, or stream it with streaming=true"
)
async def send_message(
    agent_id: str, body: LettaStreamingRequest, services: Services = Depends(get_services)
) -> Any:
    _check_streaming_options(body)
    run = await _start(services, agent_id, body, background=body.background)
    if body.streaming:
        return _stream(services, run, body)
    run, messages = await services.runs.wait_and_read(
        run.id, run_messages_reader(body.include_return_message_types)
    )
    usage = run.usage or {"message_type": "usage_statistics", "step_count": 0}
    return {
        "messages": messages,
        "stop_reason": {"message_type": "stop_reason", "stop_reason": run.stop_reason},
        "usage": usage,
    }


@router.post("/{agent_id}/messages/stream", summary="Send a message and stream the response (SSE)")
async def send_message_streaming(
    agent_id: str, body: LettaStreamingRequest, services: Services = Depends(get_services)
) -> Response:
    body.streaming = True
    run = await _start(services, agent_id, body, background=body.background)
    return _stream(services, run, body)


@router.post("/{agent_id}/messages/async", summary="Start a run in the background; returns the Run")
async def send_message_async(
    agent_id: str, body: LettaAsyncRequest, services: Services = Depends(get_services)
) -> dict[str, Any]:
    run = await _start(services, agent_id, body, background=True, callback_url=body.callback_url)
    return serializers.run(run)


class CancelRequest(BaseModel):
    run_ids: list[str] | None = None


@router.post("/{agent_id}/messages/cancel", summary="Cancel an agent's queued and running runs")
async def cancel(
    agent_id: str, body: CancelRequest | None = None, services: Services = Depends(get_services)
) -> dict[str, str]:
    async with services.db.session() as s:
        await get_agent_row(s, agent_id)
        stmt = select(RunRow.id).where(
            RunRow.agent_id == agent_id, col(RunRow.status).in_(("created", "running"))
        )
        if body and body.run_ids is not None:
            stmt = stmt.where(col(RunRow.id).in_(body.run_ids))
        active = list((await s.exec(stmt)).all())
        waiting = await pending_approval(s, agent_id)
    targets = list(active)
    if (
        waiting is not None
        and waiting[0].run_id
        and (body is None or body.run_ids is None or waiting[0].run_id in body.run_ids)
    ):
        targets.append(waiting[0].run_id)  # its calls waiting for approval are denied (Letta)
    if targets:
        await services.runs.cancel(agent_id, targets)
    return {run_id: "cancelled" for run_id in active}


@router.get("/{agent_id}/messages", summary="List an agent's messages")
async def list_messages(
    agent_id: str,
    limit: int = Query(100, ge=1, le=1000),
    order: str = Query("desc", pattern="^(asc|desc)$"),
    after: str | None = None,
    before: str | None = None,
    include_return_message_types: list[str] | None = Query(default=None),
    use_assistant_message: bool = True,
    assistant_message_tool_name: str = Query("send_message", min_length=1),
    assistant_message_tool_kwarg: str = Query("message", min_length=1),
    s: AsyncSession = Depends(session),
) -> list[dict[str, Any]]:
    agent = await get_agent_row(s, agent_id)
    shown = shown_as(use_assistant_message, assistant_message_tool_name, assistant_message_tool_kwarg)
    stmt = select(MessageRow).where(MessageRow.agent_id == agent_id)
    rows = await message_page(s, stmt, after=after, before=before, limit=limit, order=order)
    types = include_return_message_types
    # As in Letta, the filter applies to the page's messages (a page can hold fewer than `limit`).
    return [
        m
        for r in rows
        for m in to_letta_messages(r, agent.agent_type, **shown)
        if not types or m["message_type"] in types
    ]
