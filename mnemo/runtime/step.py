"""One agent step: assemble the context, call the model, persist the reply. Idempotent per (run, step)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert

from mnemo.llm.client import ChatResult, Delta, complete
from mnemo.llm.config import LLMConfig
from mnemo.llm.errors import ContextWindowExceeded
from mnemo.llm.tokens import count_tokens, estimate_tokens
from mnemo.memory.render import package_heartbeat
from mnemo.runtime import events
from mnemo.runtime.approvals import approval_request_part, approval_required, with_client_tools
from mnemo.runtime.compact import needs_compaction
from mnemo.runtime.context import (
    AgentContext,
    append_to_context,
    assistant_message_id,
    heartbeat_message_id,
    load_agent,
    load_context,
    step_id,
)
from mnemo.runtime.letta_messages import assistant_options, to_letta_messages
from mnemo.runtime.runs import begin_step, complete_step, load_step, lock_step
from mnemo.schemas.runs import StepInput, StepOutcome, ToolCallRef, Usage
from mnemo.store.db import Database
from mnemo.store.tables import MessageRow
from mnemo.tools.rules import continue_tools

OnDelta = Callable[[Delta | None], Awaitable[None]]
PRECISE_COUNT_FROM = 0.8  # of the window: below it, the padded estimate is enough  # None = flush


async def run_step(
    db: Database, inp: StepInput, *, on_delta_factory: Callable[[StepInput, str], OnDelta] | None = None
) -> StepOutcome:
    sid = step_id(inp.run_id, inp.step_index)
    # One transaction for everything before the model call: it is the hot path of every step.
    async with db.transaction() as s:
        step, run = await load_step(s, inp.run_id, sid)
        if step is not None and step.status == "success" and step.outcome:
            # A retry after the step committed: never call the model or write twice.
            return StepOutcome.model_validate(step.outcome)
        if run is not None and run.cancel_requested_at is not None:
            return StepOutcome(cancelled=True)
        if inp.heartbeat_reason:
            agent = await load_agent(s, inp.agent_id)
            hid = heartbeat_message_id(inp.run_id, inp.step_index)
            text = package_heartbeat(inp.heartbeat_reason, datetime.now(UTC), agent.timezone)
            await s.execute(
                insert(MessageRow)
                .values(
                    id=hid,
                    agent_id=inp.agent_id,
                    role="user",
                    content=[{"type": "text", "text": text}],
                    text=text,
                    run_id=inp.run_id,
                    step_id=sid,
                )
                .on_conflict_do_nothing(index_elements=["id"])
            )
            await append_to_context(s, inp.agent_id, [hid])
        if step is None:
            await begin_step(s, inp.run_id, inp.agent_id, sid, inp.step_index)
        ctx = await load_context(s, inp.agent_id)
    config = LLMConfig.model_validate(ctx.agent.llm_config or {})
    stream_tokens = bool((run.request_config or {}).get("stream_tokens")) if run else False
    on_delta = on_delta_factory(inp, ctx.agent.agent_type) if (stream_tokens and on_delta_factory) else None
    tools = with_client_tools(ctx.tool_schemas(), run)
    if inp.allowed_tools is not None:  # tool rules: offer only what the model may call now
        tools = [t for t in tools if t["function"]["name"] in set(inp.allowed_tools)]
    messages = ctx.openai_messages()
    check_fits(config, messages, tools)
    result = await complete(
        config,
        messages,
        tools or None,
        tool_choice=_tool_choice(inp.tool_choice) if tools else None,
        stream=on_delta is not None,
        on_delta=on_delta,
        parallel_tool_calls=False if (tools and ctx.agent.tool_rules) else None,
    )
    if on_delta is not None:
        await on_delta(None)  # flush what is still batched before the step commits
    shown = assistant_options(run.request_config if run else None)
    return await _persist(db, inp, ctx, config, result, approval_required(ctx, run), shown)


def _tool_choice(choice: str | None) -> str | dict[str, Any] | None:
    if choice is None or choice in ("required", "auto", "none"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def check_fits(config: LLMConfig, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> None:
    """Estimate the request before sending it; one that cannot fit is compacted first instead of being
    refused by the provider. The cheap estimate (bytes/4) runs always; the model's tokenizer
    (litellm's counter) only when the request is near the window."""
    window = config.context_window
    estimate = estimate_tokens(messages, tools)
    if estimate <= PRECISE_COUNT_FROM * window:
        return
    counted = count_tokens(config, messages, tools)
    if counted > window:
        raise ContextWindowExceeded(
            f"the request is about {counted} tokens, over the context window of {window}; "
            "compacting before calling the model"
        )


def _normalized_calls(inp: StepInput, result: ChatResult) -> list[dict[str, Any]]:
    seen: set[str] = set()
    calls = []
    for i, call in enumerate(result.tool_calls):
        cid = call.id
        if not cid or cid in seen:  # some local models omit or repeat ids; ids key idempotency
            cid = f"call_{step_id(inp.run_id, inp.step_index)[5:13]}_{i}"
        seen.add(cid)
        calls.append(
            {"id": cid, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
        )
    return calls


def _heartbeat_flag(arguments: str) -> bool | None:
    try:
        value = json.loads(arguments).get("request_heartbeat")
    except (ValueError, AttributeError):
        return None
    return value is True or (isinstance(value, str) and value.lower() == "true")


async def _persist(
    db: Database,
    inp: StepInput,
    ctx: AgentContext,
    config: LLMConfig,
    result: ChatResult,
    approval: frozenset[str] = frozenset(),
    shown: dict[str, Any] | None = None,  # how the request wants send_message calls shown (streams)
) -> StepOutcome:
    sid = step_id(inp.run_id, inp.step_index)
    mid = assistant_message_id(inp.run_id, inp.step_index)
    calls = _normalized_calls(inp, result)
    terminal = ctx.terminal
    continues = continue_tools(ctx.agent.tool_rules)
    waiting = [c["id"] for c in calls if c["function"]["name"] in approval]
    outcome = StepOutcome(
        has_text=bool(result.text),
        tool_calls=[
            ToolCallRef(
                id=c["id"],
                name=c["function"]["name"],
                terminal=c["function"]["name"] in terminal,
                request_heartbeat=_heartbeat_flag(c["function"]["arguments"]) if ctx.heartbeat_mode else None,
                continues=c["function"]["name"] in continues,
                requires_approval=c["id"] in waiting,
            )
            for c in calls
        ],
        finish_reason=result.finish_reason,
        usage=Usage(
            **result.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})
        ),
        heartbeat_mode=ctx.heartbeat_mode,
        compact=needs_compaction(result.usage.total_tokens, config.context_window),
    )
    async with db.transaction() as s:
        step = await lock_step(s, sid)  # and the run's row, which the events appended below need
        if step.status == "success" and step.outcome:
            return StepOutcome.model_validate(step.outcome)  # a concurrent attempt won the race
        content = [{"type": "text", "text": result.text}] if result.text else []
        message = MessageRow(
            id=mid,
            agent_id=inp.agent_id,
            # A reply with calls waiting for a human is Letta's approval request message.
            role="approval" if waiting else "assistant",
            content=content + ([approval_request_part(waiting)] if waiting else []),
            text=result.text or None,
            tool_calls=calls or None,
            step_id=sid,
            run_id=inp.run_id,
            model=config.model,
        )
        s.add(message)
        await s.flush()
        await append_to_context(s, inp.agent_id, [mid])
        await complete_step(
            s,
            sid,
            outcome=outcome.model_dump(mode="json"),
            model=config.model,
            model_handle=config.handle,
            provider_name=config.model_endpoint_type,
            context_window_limit=config.context_window,
            prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens,
            total_tokens=result.usage.total_tokens,
            finish_reason=result.finish_reason,
        )
        await events.append(
            s, inp.run_id, to_letta_messages(message, ctx.agent.agent_type, **(shown or {})), run_locked=True
        )
    return outcome
