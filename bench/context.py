"""Context management figures: context assembly time for an agent with 100 stored messages vs 100,000
(it must not grow with history), and the time a compaction adds with a zero-latency fake LLM."""

from __future__ import annotations

import time
import uuid
from typing import Any

import sqlalchemy as sa

from bench.stack import BenchStack
from bench.stats import summarize
from mnemo.runtime.compact import compact
from mnemo.runtime.context import load_context
from mnemo.schemas.runs import CompactInput
from mnemo.store.tables import AgentRow, MessageRow

IN_CONTEXT = 60  # messages in the window; the rest are history (recall memory)


async def _seed(stack: BenchStack, agent_id: str, stored: int) -> None:
    """`stored` messages in Postgres, the last IN_CONTEXT of them in the context window."""
    rows = [
        {
            "id": f"message-{uuid.uuid4()}",
            "agent_id": agent_id,
            "role": "user" if i % 2 == 0 else "assistant",
            "content": [{"type": "text", "text": f"stored message {i} about topic {i % 97}"}],
            "text": f"stored message {i} about topic {i % 97}",
        }
        for i in range(stored)
    ]
    async with stack.db.transaction() as s:
        for start in range(0, len(rows), 5000):
            await s.execute(sa.insert(MessageRow), rows[start : start + 5000])
        agent = await s.get(AgentRow, agent_id)
        assert agent is not None
        agent.message_ids = [agent.message_ids[0], *(r["id"] for r in rows[-IN_CONTEXT:])]
        s.add(agent)


async def _assembly_ms(stack: BenchStack, agent_id: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        async with stack.db.session() as s:
            ctx = await load_context(s, agent_id)
        ctx.openai_messages()
        ctx.tool_schemas()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def measure_context(
    stack: BenchStack, *, stored: tuple[int, ...] = (100, 100_000), n: int = 100
) -> dict[str, Any]:
    assembly: dict[str, Any] = {}
    for count in stored:
        agent = await stack.create_agent()
        await _seed(stack, agent.id, count)
        await _assembly_ms(stack, agent.id, 10)  # warm the pool and caches
        assembly[str(count)] = summarize(await _assembly_ms(stack, agent.id, n)).model_dump()
    # Compaction of a 60-message window with the zero-latency fake as the summarizer.
    stack.fake.set_policy("echo")
    compaction = []
    for i in range(10):
        agent = await stack.create_agent()
        await _seed(stack, agent.id, IN_CONTEXT)
        started = time.perf_counter()
        await compact(
            stack.db,
            CompactInput(
                run_id=None, agent_id=agent.id, step_index=0, trigger="bench", request_id=f"bench-{i}"
            ),
        )
        compaction.append((time.perf_counter() - started) * 1000)
    return {
        "in_context_messages": IN_CONTEXT,
        "assembly_ms_by_stored_messages": assembly,
        "compaction_ms": summarize(compaction).model_dump(),
        "note": "assembly = load agent, in-context messages and tools from Postgres, build the request; "
        "compaction = plan + summarizer call (zero-latency fake) + commit, for a 60-message window",
    }
