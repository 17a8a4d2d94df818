"""The cost of one model call through Mnemo's LLM client (litellm + the OpenAI SDK), against the same
request posted with plain httpx: the difference is client overhead paid on every step."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from pydantic import BaseModel

from bench.stack import BenchStack
from bench.stats import Summary, summarize
from mnemo.llm.client import complete
from mnemo.llm.config import LLMConfig
from mnemo.runtime.context import load_context

WARMUP = 3


class LLMCallReport(BaseModel):
    context_messages: int
    tools: int
    request_bytes: int
    mnemo_client_ms: Summary
    mnemo_client_cpu_ms: Summary
    plain_httpx_ms: Summary
    plain_httpx_cpu_ms: Summary
    note: str


async def _time(n: int, call: Callable[[], Awaitable[Any]]) -> tuple[list[float], list[float]]:
    """Wall and CPU (this whole process) milliseconds per call."""
    for _ in range(WARMUP):
        await call()
    wall, cpu = [], []
    for _ in range(n):
        c0, t0 = time.process_time(), time.perf_counter()
        await call()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return wall, cpu


async def measure_llm_call(stack: BenchStack, agent_id: str, *, n: int) -> LLMCallReport:
    """Replay `agent_id`'s current context (as llm.step builds it) to the fake LLM `n` times each way."""
    stack.fake.set_policy("echo")
    async with stack.db.session() as s:
        ctx = await load_context(s, agent_id)
    config = LLMConfig.model_validate(ctx.agent.llm_config or {})
    messages, tools = ctx.openai_messages(), ctx.tool_schemas()
    body = {"model": config.model, "messages": messages, "tools": tools}

    async with httpx.AsyncClient(base_url=stack.fake.base_url, timeout=30) as http:

        async def plain() -> None:
            response = await http.post("/chat/completions", json=body)
            response.raise_for_status()
            response.json()

        plain_wall, plain_cpu = await _time(n, plain)

    async def mnemo() -> None:
        await complete(config, messages, tools or None)

    client_wall, client_cpu = await _time(n, mnemo)
    return LLMCallReport(
        context_messages=len(messages),
        tools=len(tools),
        request_bytes=len(json.dumps(body)),
        mnemo_client_ms=summarize(client_wall),
        mnemo_client_cpu_ms=summarize(client_cpu),
        plain_httpx_ms=summarize(plain_wall),
        plain_httpx_cpu_ms=summarize(plain_cpu),
        note="called from the benchmark process; the fake LLM answers at once (its own process)",
    )
