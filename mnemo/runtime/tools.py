"""Executing one tool call and recording its return. Idempotent per tool call id.

Built-in tools (`mnemo.runtime.builtin_tools`) run against Postgres in the same transaction that
records their return, so a retried call never edits memory twice. Tools registered in-process by the
worker (`InProcessTool`) run at most once per call unless declared idempotent: an attempt that finds
its own earlier start recorded does not run the tool again.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.config import get_settings
from mnemo.memory.edits_dispatch import MEMORY_TOOL_NAMES
from mnemo.memory.render import (
    UNTRUNCATED_TOOLS,
    coerce_tool_return,
    package_tool_return,
    truncate_tool_return,
)
from mnemo.memory.tool_schemas import TOOL_ARG_DEFAULTS
from mnemo.runtime import builtin_tools, events
from mnemo.runtime.agents import recompile_system_message
from mnemo.runtime.approvals import decision_for, denial_text
from mnemo.runtime.builtin_tools import ToolResult
from mnemo.runtime.context import (
    AgentContext,
    append_to_context,
    assistant_message_id,
    load_agent,
    load_context,
    tool_message_id,
)
from mnemo.runtime.letta_messages import to_letta_messages
from mnemo.sandbox.base import SandboxLimits, SandboxRequest, SandboxUnavailable
from mnemo.sandbox.select import backend_for, runner
from mnemo.schemas.runs import ToolInput, ToolOutcome
from mnemo.store.db import Database
from mnemo.store.tables import MessageRow, RunEventRow, ToolRow
from mnemo.tools.prefill import INVALID_PREFILL, InvalidPrefill, merge_prefilled, prefill_error
from mnemo.tools.solver import CONSTRAINT_ERROR

INTERRUPTED = (
    "Error: the tool was interrupted before it returned (its worker stopped). It was not run again, "
    "so any side effect it had happened at most once."
)


@dataclass(frozen=True)
class InProcessTool:
    """A Python tool the worker process itself provides (registered when the worker is built)."""

    name: str
    func: Callable[..., Awaitable[Any]]
    idempotent: bool = False


async def _recorded(db: Database, inp: ToolInput) -> ToolOutcome | None:
    mid = tool_message_id(inp.run_id, inp.tool_call_id)
    async with db.session() as s:
        row = await s.get(MessageRow, mid)
        if row is None and inp.approval_of:
            # An approved call may have been answered already, e.g. denied when its approval timed out.
            row = (
                await s.exec(
                    select(MessageRow)
                    .where(
                        MessageRow.agent_id == inp.agent_id,
                        MessageRow.role == "tool",
                        MessageRow.tool_call_id == inp.tool_call_id,
                    )
                    .limit(1)
                )
            ).one_or_none()
    if row is None:
        return None
    raw = row.tool_returns[0].get("tool_return") if row.tool_returns else None
    output = raw if inp.report_output else None
    return ToolOutcome(
        tool_call_id=inp.tool_call_id,
        message_id=row.id,
        ok=not row.is_err,
        output=None if output is None else str(output),
        # A retry after the refusal was recorded must still stop the run as the first attempt would.
        prefill_error=bool(inp.prefilled_args and row.is_err and str(raw).startswith(INVALID_PREFILL)),
    )


async def execute_tool(
    db: Database, inp: ToolInput, extra_tools: dict[str, InProcessTool] | None = None
) -> ToolOutcome:
    done = await _recorded(db, inp)
    if done is not None:
        return done
    async with db.session() as s:
        ctx = await load_context(s, inp.agent_id)
        call = await _find_call(s, inp)
        decision = await decision_for(s, inp.run_id, inp.tool_call_id) if inp.approval_of else None
    tool = next((t for t in ctx.tools if t.name == inp.tool_name), None)
    if inp.rejected is not None:  # broke a tool rule: the model learns why, nothing runs
        return await _refuse(db, inp, ctx, tool, inp.rejected)
    if inp.approval_of:
        answered = _answered(inp, decision, tool)
        if answered is not None:
            return await _record(db, inp, ctx, tool, answered)
    if tool is None:
        valid = [t.name for t in ctx.tools]
        return await _refuse(
            db,
            inp,
            ctx,
            None,
            f"{CONSTRAINT_ERROR} Cannot call {inp.tool_name}, valid tools include: {valid}.",
        )
    try:
        args = json.loads(call or "{}")
        if not isinstance(args, dict):
            raise ValueError("arguments must be a JSON object")
    except ValueError as exc:
        return await _refuse(
            db,
            inp,
            ctx,
            tool,
            f"Error parsing arguments for {inp.tool_name}: {exc}. Arguments must be a JSON object matching the tool's schema.",
        )
    args.pop("request_heartbeat", None)
    if inp.prefilled_args:
        try:
            args = merge_prefilled(tool.json_schema, tool.name, args, inp.prefilled_args)
        except InvalidPrefill as exc:
            refused = await _refuse(db, inp, ctx, tool, prefill_error(inp.prefill_source, exc))
            return refused.model_copy(update={"prefill_error": True})
        await _show_prefilled(db, inp)
    args = {**TOOL_ARG_DEFAULTS.get(tool.name, {}), **{k: v for k, v in args.items() if v is not None}}

    if tool.name in MEMORY_TOOL_NAMES:
        return await _memory_tool(db, inp, ctx, tool, args)
    if tool.name == builtin_tools.ARCHIVAL_INSERT:
        return await _archival_insert(db, inp, ctx, tool, args)
    if tool.name == builtin_tools.SEND_MESSAGE:
        return await _record(db, inp, ctx, tool, builtin_tools.send_message())
    if tool.name in builtin_tools.SEARCH_TOOLS:
        return await _search(db, inp, ctx, tool, args)
    extra = (extra_tools or {}).get(tool.name)
    if extra is not None:
        return await _at_most_once(db, inp, ctx, tool, lambda: call_in_process(extra, args), extra.idempotent)
    if tool.source_code and tool.source_type == "python":
        idempotent = bool((tool.metadata_ or {}).get("idempotent"))
        return await _at_most_once(db, inp, ctx, tool, lambda: run_custom_tool(ctx, tool, args), idempotent)
    return await _refuse(
        db,
        inp,
        ctx,
        tool,
        f"Error: running tool {tool.name!r} ({tool.tool_type}, {tool.source_type}) is not supported yet.",
    )


def _answered(inp: ToolInput, decision: Mapping[str, Any] | None, tool: ToolRow | None) -> ToolResult | None:
    """What the human's answer makes of an approval-pending call: None = approved, run the tool."""
    if decision is None:
        return ToolResult(False, denial_text({"reason": "the approval did not answer this tool call"}))
    if decision.get("type") == "tool":  # a client-side tool: the client ran it and sent its return
        ok = decision.get("status", "success") == "success"
        return ToolResult(ok, decision.get("tool_return"), decision.get("stdout"), decision.get("stderr"))
    if not decision.get("approve"):
        return ToolResult(False, denial_text(decision))
    if tool is None:
        return ToolResult(
            False,
            f"Error: {inp.tool_name} is a client-side tool: answer it with its tool return, not an approval.",
        )
    return None


def call_message_id(inp: ToolInput) -> str:
    return inp.approval_of or assistant_message_id(inp.run_id, inp.step_index)


async def _find_call(session: AsyncSession, inp: ToolInput) -> str | None:
    msg = await session.get(MessageRow, call_message_id(inp))
    for call in (msg.tool_calls or []) if msg else []:
        if call.get("id") == inp.tool_call_id:
            return (call.get("function") or {}).get("arguments") or "{}"
    raise LookupError(f"tool call {inp.tool_call_id} not found in step {inp.step_index} of run {inp.run_id}")


async def _show_prefilled(db: Database, inp: ToolInput) -> None:
    """Store the call with the rule's arguments in place, as Letta records it: the transcript (and the
    model, next step) sees what actually ran. Rewriting it again on a retry changes nothing."""
    assert inp.prefilled_args is not None
    async with db.transaction() as s:
        msg = await s.get(MessageRow, call_message_id(inp), with_for_update=True)
        if msg is None or not msg.tool_calls:
            return
        calls = []
        for call in msg.tool_calls:
            if call.get("id") == inp.tool_call_id:
                fn = dict(call.get("function") or {})
                fn["arguments"] = json.dumps(
                    {**json.loads(fn.get("arguments") or "{}"), **inp.prefilled_args}
                )
                call = {**call, "function": fn}
            calls.append(call)
        msg.tool_calls = calls


async def _write_return(
    s: AsyncSession, inp: ToolInput, ctx: AgentContext, tool: ToolRow | None, result: ToolResult
) -> ToolOutcome:
    mid = tool_message_id(inp.run_id, inp.tool_call_id)
    raw = coerce_tool_return(result.value)
    if tool is not None and tool.name not in UNTRUNCATED_TOOLS:
        raw = truncate_tool_return(raw, tool.return_char_limit)
    text = package_tool_return(result.ok, raw, datetime.now(UTC), ctx.agent.timezone)
    status = "success" if result.ok else "error"
    inserted = await s.execute(
        insert(MessageRow)
        .values(
            id=mid,
            agent_id=inp.agent_id,
            role="tool",
            name=inp.tool_name,
            content=[{"type": "text", "text": text}],
            text=None,
            tool_call_id=inp.tool_call_id,
            run_id=inp.run_id,
            step_id=(await s.get(MessageRow, call_message_id(inp))).step_id,  # type: ignore[union-attr]
            is_err=not result.ok,
            tool_returns=[
                {
                    "tool_call_id": inp.tool_call_id,
                    "status": status,
                    "tool_return": raw,
                    "stdout": result.stdout,
                    "stderr": result.stderr,
                }
            ],
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(MessageRow.id)
    )
    if inserted.first() is not None:
        await append_to_context(s, inp.agent_id, [mid])
        row = await s.get(MessageRow, mid)
        assert row is not None
        await events.append(s, inp.run_id, to_letta_messages(row, ctx.agent.agent_type))
    return ToolOutcome(
        tool_call_id=inp.tool_call_id, message_id=mid, ok=result.ok, output=raw if inp.report_output else None
    )


async def _record(
    db: Database, inp: ToolInput, ctx: AgentContext, tool: ToolRow | None, result: ToolResult
) -> ToolOutcome:
    async with db.transaction() as s:
        return await _write_return(s, inp, ctx, tool, result)


async def _refuse(
    db: Database, inp: ToolInput, ctx: AgentContext, tool: ToolRow | None, error: str
) -> ToolOutcome:
    """Record an error return for a call that did not run; the model reads `error`."""
    return await _record(db, inp, ctx, tool, ToolResult(False, error))


async def _already_recorded(s: AsyncSession, inp: ToolInput) -> ToolOutcome | None:
    """Inside the transaction that would record it: a retry of a call whose return is already there."""
    mid = tool_message_id(inp.run_id, inp.tool_call_id)
    if await s.get(MessageRow, mid) is None:
        return None
    return ToolOutcome(tool_call_id=inp.tool_call_id, message_id=mid, ok=True)


async def _memory_tool(
    db: Database, inp: ToolInput, ctx: AgentContext, tool: ToolRow, args: dict[str, Any]
) -> ToolOutcome:
    async with db.transaction() as s:
        agent = await load_agent(s, inp.agent_id, for_update=True)  # one memory editor per agent at a time
        done = await _already_recorded(s, inp)
        if done is not None:
            return done
        edit = await builtin_tools.memory_edit(
            s, inp.agent_id, tool.name, args, tool_call_id=inp.tool_call_id
        )
        outcome = await _write_return(s, inp, ctx, tool, edit.result)
        if edit.changed:
            await recompile_system_message(s, agent)
        return outcome


async def _archival_insert(
    db: Database, inp: ToolInput, ctx: AgentContext, tool: ToolRow, args: dict[str, Any]
) -> ToolOutcome:
    passage = await builtin_tools.archival_passage(ctx.agent, args)
    if isinstance(passage, ToolResult):
        return await _record(db, inp, ctx, tool, passage)
    async with db.transaction() as s:
        agent = await load_agent(s, inp.agent_id, for_update=True)
        done = await _already_recorded(s, inp)
        if done is not None:
            return done
        await builtin_tools.insert_passage(s, agent, passage)
        outcome = await _write_return(s, inp, ctx, tool, ToolResult(True, None))
        await recompile_system_message(s, agent)
        return outcome


async def _search(
    db: Database, inp: ToolInput, ctx: AgentContext, tool: ToolRow, args: dict[str, Any]
) -> ToolOutcome:
    # A transaction: conversation_search stores the embeddings it computes for older messages.
    result = await builtin_tools.search_memory(db.transaction(), ctx.agent, tool.name, args)
    if result.ok and isinstance(result.value, list):
        result = ToolResult(True, json.dumps(result.value, ensure_ascii=False))
    return await _record(db, inp, ctx, tool, result)


async def _at_most_once(
    db: Database,
    inp: ToolInput,
    ctx: AgentContext,
    tool: ToolRow,
    call: Callable[[], Awaitable[ToolResult]],
    idempotent: bool,
) -> ToolOutcome:
    """Run a tool with effects outside Postgres. Unless it is idempotent, record that it started first:
    an attempt that finds an earlier start (its worker died mid-call) reports that instead of running
    the tool a second time."""
    marker = {
        "message_type": "tool_execution_started",
        "tool_call_id": inp.tool_call_id,
        "tool_name": tool.name,
    }
    if not idempotent:
        async with db.transaction() as s:
            started = (
                await s.exec(
                    select(sa.func.count())
                    .select_from(RunEventRow)
                    .where(
                        RunEventRow.run_id == inp.run_id,
                        RunEventRow.event["message_type"].astext == "tool_execution_started",  # type: ignore[index]
                        RunEventRow.event["tool_call_id"].astext == inp.tool_call_id,  # type: ignore[index]
                    )
                )
            ).one()
            if started:
                return await _write_return(s, inp, ctx, tool, ToolResult(False, INTERRUPTED))
            await events.append(s, inp.run_id, [marker])
    return await _record(db, inp, ctx, tool, await call())


async def call_in_process(extra: InProcessTool, args: dict[str, Any]) -> ToolResult:
    try:
        return ToolResult(True, await extra.func(**args))
    except Exception as exc:  # the model sees the tool's own error, as in Letta
        return ToolResult(False, f"{type(exc).__name__}: {exc}")


async def run_custom_tool(ctx: AgentContext, tool: ToolRow, args: dict[str, Any]) -> ToolResult:
    """Run a custom Python tool in its sandbox. Records nothing: at-most-once is the caller's business."""
    settings = get_settings()
    # The tool sees the agent's secrets and Letta's two ids, nothing of the server's environment.
    env = {str(k): str(v) for k, v in (ctx.agent.secrets or {}).items()}
    env |= {"LETTA_AGENT_ID": ctx.agent.id, "LETTA_TOOL_ID": tool.id}
    try:
        backend = backend_for(tool.metadata_, ctx.agent.metadata_, settings)
        request = SandboxRequest(
            source_code=tool.source_code or "",
            function_name=tool.name,
            args=args,
            env=env,
            pip_requirements=[
                r["name"] + (f"=={r['version']}" if r.get("version") else "")
                for r in tool.pip_requirements or []
            ],
            limits=SandboxLimits(timeout_s=settings.tool_timeout_s),
        )
        result = await runner(backend, settings).run(request)
    except (SandboxUnavailable, ValueError) as exc:
        return ToolResult(False, f"Error: {exc}")
    if result.ok:
        return ToolResult(True, result.value, result.stdout or None, result.stderr or None)
    return ToolResult(False, result.error or "the tool failed", result.stdout or None, result.stderr or None)
