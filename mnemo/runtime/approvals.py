"""Human approval of tool calls: which calls wait for a human, what is pending, and denials.

A step whose model reply calls a tool that needs approval stores its reply as an `approval` message
(the calls waiting are listed in an `approval_request` content part) and the run stops with
`requires_approval`. The human's answer arrives as the next run's input: an `approval` message whose
`tool_returns` hold the decisions. Tool returns are keyed by tool call id, so a call is answered once
whichever path (approval, timeout, cancel) gets there first.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.memory.render import package_tool_return
from mnemo.runtime.context import AgentContext, append_to_context, derived_id, load_agent
from mnemo.schemas.runs import ApprovalCall, DenyApprovals
from mnemo.store.db import Database
from mnemo.store.tables import AgentRow, MessageRow, RunRow

APPROVAL_REQUEST_PART = "approval_request"
DENIED = "Error: request to call tool denied. User reason: {reason}"
DENIED_ON_CANCEL = "The user cancelled the request, so the tool call was denied."
DENIED_ON_TIMEOUT = "Nobody answered the approval request within {timeout}, so the tool call was denied."


def client_tools(run: RunRow | None) -> list[dict[str, Any]]:
    return list(((run.request_config or {}).get("client_tools") or []) if run else [])


def client_tool_schemas(run: RunRow | None) -> list[dict[str, Any]]:
    """Tools the client runs itself (per request), as OpenAI tool schemas."""
    out = []
    for tool in client_tools(run):
        fn = {
            "name": tool["name"],
            "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
        }
        if tool.get("description"):
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    return out


def with_client_tools(schemas: list[dict[str, Any]], run: RunRow | None) -> list[dict[str, Any]]:
    """Client tools override server tools of the same name (Letta)."""
    extra = client_tool_schemas(run)
    names = {s["function"]["name"] for s in extra}
    return [s for s in schemas if s["function"]["name"] not in names] + extra


def approval_required(ctx: AgentContext, run: RunRow | None) -> frozenset[str]:
    by_rule = {r.get("tool_name") for r in ctx.agent.tool_rules or [] if r.get("type") == "requires_approval"}
    by_default = {t.name for t in ctx.tools if t.default_requires_approval}
    by_client = {t["name"] for t in client_tools(run)}
    return frozenset(n for n in by_rule | by_default | by_client if n)


def requested_ids(row: MessageRow) -> list[str]:
    for part in row.content or []:
        if part.get("type") == APPROVAL_REQUEST_PART:
            return list(part.get("tool_call_ids") or [])
    return []


def approval_request_part(call_ids: list[str]) -> dict[str, Any]:
    return {"type": APPROVAL_REQUEST_PART, "tool_call_ids": call_ids}


async def answered_ids(s: AsyncSession, agent_id: str, call_ids: list[str]) -> set[str]:
    if not call_ids:
        return set()
    rows = await s.exec(
        select(MessageRow.tool_call_id).where(
            MessageRow.agent_id == agent_id,
            MessageRow.role == "tool",
            col(MessageRow.tool_call_id).in_(call_ids),
        )
    )
    return {r for r in rows.all() if r}


# Built once: every message sent checks for a pending approval.
_NEWEST_APPROVAL_REQUEST = (
    select(MessageRow)
    .where(
        col(MessageRow.id).in_(
            select(sa.func.jsonb_array_elements_text(AgentRow.message_ids)).where(
                AgentRow.id == sa.bindparam("agent_id")
            )
        ),
        MessageRow.role == "approval",
        col(MessageRow.tool_calls).is_not(None),
    )
    .order_by(col(MessageRow.seq).desc())
    .limit(1)
)


async def pending_approval(s: AsyncSession, agent_id: str) -> tuple[MessageRow, list[str]] | None:
    """The agent's newest approval request and its calls nobody has answered yet, if any.

    Looked for among the in-context messages only (compaction never evicts a pending request and a
    reset is refused while one waits): O(context), where a scan of the agent's history for its last
    approval message would be O(history) for every agent that never asked for one."""
    row = (await s.exec(_NEWEST_APPROVAL_REQUEST, params={"agent_id": agent_id})).one_or_none()
    if row is None:
        return None
    wanted = requested_ids(row)
    done = await answered_ids(s, agent_id, wanted)
    left = [c for c in wanted if c not in done]
    return (row, left) if left else None


def call_name(row: MessageRow, call_id: str) -> str:
    for call in row.tool_calls or []:
        if call.get("id") == call_id:
            return str((call.get("function") or {}).get("name") or "")
    raise LookupError(f"tool call {call_id} is not in message {row.id}")


async def approvals_of_run(s: AsyncSession, run: RunRow) -> list[ApprovalCall]:
    """The pending calls this run's approval input answers (empty for an ordinary run)."""
    answer = (
        await s.exec(
            select(MessageRow).where(MessageRow.run_id == run.id, MessageRow.role == "approval").limit(1)
        )
    ).one_or_none()
    request_id = (run.request_config or {}).get("approval_request_id")
    if answer is None or not request_id:
        return []
    request = await s.get(MessageRow, request_id)
    if request is None:
        return []
    return [
        ApprovalCall(
            tool_call_id=d["tool_call_id"],
            tool_name=call_name(request, d["tool_call_id"]),
            message_id=request.id,
        )
        for d in answer.tool_returns or []
        if d.get("tool_call_id") in requested_ids(request)
    ]


async def decision_for(s: AsyncSession, run_id: str, call_id: str) -> Mapping[str, Any] | None:
    answer = (
        await s.exec(
            select(MessageRow).where(MessageRow.run_id == run_id, MessageRow.role == "approval").limit(1)
        )
    ).one_or_none()
    for d in (answer.tool_returns or []) if answer else []:
        if d.get("tool_call_id") == call_id:
            return d
    return None


def denial_text(decision: Mapping[str, Any]) -> str:
    return DENIED.format(reason=decision.get("reason") or "no reason given")


async def deny_pending(db: Database, inp: DenyApprovals) -> int:
    """Answer every still-pending call of the request with a denial (no tool runs). Idempotent."""
    async with db.transaction() as s:
        request = await s.get(MessageRow, inp.message_id)
        if request is None:
            return 0
        agent = await load_agent(s, inp.agent_id, for_update=True)
        wanted = requested_ids(request)
        left = [c for c in wanted if c not in await answered_ids(s, inp.agent_id, wanted)]
        now = datetime.now(UTC)
        ids = []
        for call_id in left:
            mid = derived_id("message", inp.run_id, "denied", call_id)
            text = package_tool_return(False, inp.reason, now, agent.timezone)
            await s.execute(
                insert(MessageRow)
                .values(
                    id=mid,
                    agent_id=inp.agent_id,
                    role="tool",
                    name=call_name(request, call_id),
                    content=[{"type": "text", "text": text}],
                    tool_call_id=call_id,
                    run_id=inp.run_id,
                    step_id=request.step_id,
                    is_err=True,
                    tool_returns=[{"tool_call_id": call_id, "status": "error", "tool_return": inp.reason}],
                )
                .on_conflict_do_nothing(index_elements=["id"])
            )
            ids.append(mid)
        await append_to_context(s, inp.agent_id, ids)
        return len(ids)


def set_rule(rules: list[dict[str, Any]], tool_name: str, required: bool) -> list[dict[str, Any]]:
    """The agent's rules with a requires_approval rule for the tool added or removed."""
    kept = [
        r for r in rules if not (r.get("type") == "requires_approval" and r.get("tool_name") == tool_name)
    ]
    return [*kept, {"tool_name": tool_name, "type": "requires_approval"}] if required else kept
