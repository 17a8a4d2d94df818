"""Compaction of an agent's in-context window: plan the cut, summarize the evicted messages with a
separate model call, put the summary at index 1. Evicted messages stay in Postgres (recall memory).

Idempotent per (run, step, attempt): the summary message id is derived from them, so a retried
compaction that already committed returns what it did instead of summarizing twice.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from mnemo.config import get_settings
from mnemo.llm.config import LLMConfig, resolve_llm_config
from mnemo.memory.compaction import (
    CompactionStats,
    MsgView,
    clip_summary,
    estimate_tokens,
    plan_compaction,
    summarize,
    summary_message_text,
)
from mnemo.memory.compaction_prompts import prompt_for_mode
from mnemo.runtime import events
from mnemo.runtime.agents import recompile_system_message
from mnemo.runtime.context import AgentContext, derived_id, load_agent, load_context, to_openai
from mnemo.schemas.runs import CompactInput, CompactOutcome
from mnemo.store.db import Database
from mnemo.store.tables import MessageRow

# Letta's trigger: compact once the last call used more than 90% of the window.
TRIGGER_FRACTION = 0.9


def needs_compaction(total_tokens: int, context_window: int) -> bool:
    return total_tokens > int(context_window * TRIGGER_FRACTION)


def _views(ctx: AgentContext) -> list[MsgView]:
    views = []
    for row in ctx.messages:
        openai = to_openai(row) or {}
        ids = [c.get("id", "") for c in (row.tool_calls or [])] if row.role == "assistant" else []
        if row.role == "tool" and row.tool_call_id:
            ids = [row.tool_call_id]
        role = (
            row.role if row.role in ("system", "user", "assistant", "tool", "approval", "summary") else "user"
        )
        views.append(
            MsgView(id=row.id, role=role, tokens=estimate_tokens(json.dumps(openai)), tool_call_ids=ids)
        )  # type: ignore[arg-type]
    return views


def _summarizer_config(ctx: AgentContext) -> LLMConfig:
    settings = ctx.agent.compaction_settings or {}
    if settings.get("model") or settings.get("llm_config"):
        return resolve_llm_config(settings.get("model"), settings.get("llm_config"), get_settings())
    return LLMConfig.model_validate(ctx.agent.llm_config or {})


async def compact(db: Database, inp: CompactInput) -> CompactOutcome:
    # Within a run, the id makes a retried compaction find its own earlier commit; outside one (the
    # API's /summarize) the request id does.
    summary_id = derived_id("message", inp.run_id or inp.request_id, "summary", inp.step_index, inp.attempt)
    async with db.session() as s:
        if await s.get(MessageRow, summary_id) is not None:
            return CompactOutcome(summary_message_id=summary_id, evicted=0, kept=0, already_done=True)
        ctx = await load_context(s, inp.agent_id)
    config = LLMConfig.model_validate(ctx.agent.llm_config or {})
    settings = ctx.agent.compaction_settings or {}
    views = _views(ctx)
    plan = plan_compaction(  # raises SystemPromptTooLarge when nothing can help
        views,
        context_window=config.context_window,
        mode=settings.get("mode") or "sliding_window",
        sliding_window_percentage=float(settings.get("sliding_window_percentage") or 0.3),
    )
    by_id = {m.id: m for m in ctx.messages}
    evicted = [to_openai(by_id[i]) for i in plan.evict_ids]
    summary = clip_summary(
        await summarize(_summarizer_config(ctx), [m for m in evicted if m], prompt_for_mode(plan.mode)),
        settings.get("clip_chars", 50_000),
    )
    stats = CompactionStats(
        trigger=inp.trigger,
        context_tokens_before=plan.tokens_before,
        context_tokens_after=plan.tokens_after_estimate,
        context_window=config.context_window,
        messages_count_before=len(views),
        messages_count_after=len(plan.keep_ids) + 1,
    )
    text = summary_message_text(
        summary, len(plan.evict_ids), plan.mode, datetime.now(UTC), ctx.agent.timezone, stats
    )
    async with db.transaction() as s:
        agent = await load_agent(s, inp.agent_id, for_update=True)
        if await s.get(MessageRow, summary_id) is not None:
            return CompactOutcome(summary_message_id=summary_id, evicted=0, kept=0, already_done=True)
        if set(plan.keep_ids) - set(agent.message_ids):
            raise RuntimeError(
                "the context changed while it was being summarized; compaction will be retried"
            )
        s.add(
            MessageRow(
                id=summary_id,
                agent_id=inp.agent_id,
                role="user",
                content=[{"type": "text", "text": text}],
                text=None,
                run_id=inp.run_id,
            )
        )
        await s.flush()
        # Whatever joined the context since it was planned (a run, when compaction was asked for
        # through the API) stays, after the kept messages.
        evicted = set(plan.evict_ids)
        agent.message_ids = [
            agent.message_ids[0],
            summary_id,
            *(i for i in agent.message_ids[1:] if i not in evicted),
        ]
        s.add(agent)
        await s.flush()
        await recompile_system_message(s, agent)
        if inp.run_id is not None:
            event = {
                "message_type": "event_message",
                "event_type": "compaction",
                "event_data": stats.model_dump(),
            }
            await events.append(s, inp.run_id, [event])
    return CompactOutcome(
        summary_message_id=summary_id,
        evicted=len(plan.evict_ids),
        kept=len(plan.keep_ids),
        messages_before=len(views),
        messages_after=len(agent.message_ids),
    )
