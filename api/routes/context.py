"""`POST /v1/agents/{id}/summarize` (compact now) and `GET /v1/agents/{id}/context` (token breakdown)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import Services, get_services, session
from api.routes.agents import get_agent_row
from mnemo.llm.config import LLMConfig
from mnemo.memory.compaction import SystemPromptTooLarge, estimate_tokens
from mnemo.memory.render import render_memory_blocks
from mnemo.runtime.agents import agent_blocks, block_view
from mnemo.runtime.compact import compact
from mnemo.runtime.context import load_context, text_of
from mnemo.schemas.runs import CompactInput
from mnemo.store.tables import MessageRow

router = APIRouter(prefix="/agents", tags=["context"])


class SummarizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    compaction_settings: dict[str, Any] | None = None  # accepted; the agent's own settings apply


@router.post("/{agent_id}/summarize", summary="Compact the agent's context now")
async def summarize(
    agent_id: str, body: SummarizeRequest | None = None, services: Services = Depends(get_services)
) -> dict[str, Any]:
    async with services.db.session() as s:
        await get_agent_row(s, agent_id)
    request = CompactInput(
        run_id=None, agent_id=agent_id, step_index=0, trigger="manual", request_id=str(uuid.uuid4())
    )
    try:
        outcome = await compact(services.db, request)
    except SystemPromptTooLarge as exc:
        raise HTTPException(400, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(400, f"nothing to summarize: {exc}") from exc
    if not outcome.evicted:
        raise HTTPException(400, "The context could not be shortened: there is nothing to evict")
    async with services.db.session() as s:
        summary = await s.get(MessageRow, outcome.summary_message_id)
    return {
        "summary": json.loads(text_of(summary))["message"] if summary else "",
        "num_messages_before": outcome.messages_before,
        "num_messages_after": outcome.messages_after,
    }


@router.get("/{agent_id}/context", summary="Token breakdown of the agent's context window")
async def context(agent_id: str, s: AsyncSession = Depends(session)) -> dict[str, Any]:
    await get_agent_row(s, agent_id)
    ctx = await load_context(s, agent_id)
    config = LLMConfig.model_validate(ctx.agent.llm_config or {})
    system = text_of(ctx.messages[0]) if ctx.messages else ""
    memory = render_memory_blocks([block_view(b) for b in await agent_blocks(s, agent_id)])
    rest = ctx.messages[1:]
    # The compaction summary is a user message; an initial system message can be a system_alert too.
    summary = (
        text_of(rest[0]) if rest and rest[0].role == "user" and '"system_alert"' in text_of(rest[0]) else ""
    )
    messages = rest[1:] if summary else rest
    tools = json.dumps(ctx.tool_schemas())
    counts = {
        "num_tokens_system": estimate_tokens(system) - estimate_tokens(memory),
        "num_tokens_core_memory": estimate_tokens(memory),
        "num_tokens_summary_memory": estimate_tokens(summary),
        "num_tokens_functions_definitions": estimate_tokens(tools),
        "num_tokens_messages": sum(
            estimate_tokens(json.dumps({"role": m.role, "content": text_of(m), "tool_calls": m.tool_calls}))
            for m in messages
        ),
    }
    return {
        "context_window_size_max": config.context_window,
        "context_window_size_current": sum(counts.values()),
        "num_messages": len(ctx.messages),
        "num_recall_memory": None,
        "num_archival_memory": None,
        **counts,
        "system_prompt": system,
        "core_memory": memory,
        "summary_memory": summary or None,
        "functions_definitions": ctx.tool_schemas(),
        "token_counting": "estimate: UTF-8 bytes / 4 x 1.3, Letta's approximation",
    }
