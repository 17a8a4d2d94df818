"""Throughput: many agents, each sent a burst of messages at once; messages per second of wall time."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from bench.stack import BenchStack
from bench.stats import Summary, cpu_delta_ms, cpu_seconds, summarize
from bench.turns import ONE_STEP, ensure_completed, set_policy, wait_run
from mnemo.store.tables import RunRow


class ThroughputReport(BaseModel):
    agents: int
    messages_per_agent: int
    turn_kind: str
    msgs_per_s: float
    wall_s: float
    submit_wall_s: float
    message_latency_ms: Summary
    each_agent_in_order: bool
    cpu_ms_per_message: dict[str, float]
    # Sum over the components above; the CPU the whole stack spends per message.
    cpu_ms_per_message_total: float
    # SQL statements the worker sent per message; counted only with an in-process worker (None else).
    worker_sql_statements_per_message: float | None = None
    note: str


async def _send_all(stack: BenchStack, agent_id: str, count: int, sent: dict[str, float]) -> list[str]:
    """Submit `count` messages back to back (without waiting for the runs): the agent queues them."""
    ids = []
    for i in range(count):
        t = time.perf_counter()
        run = await stack.runs.send(agent_id, [{"role": "user", "content": f"burst message {i}"}])
        sent[run.id] = t
        ids.append(run.id)
    return ids


async def _wait(stack: BenchStack, run_id: str, done: dict[str, float]) -> RunRow:
    row = await wait_run(stack, run_id)
    done[run_id] = time.perf_counter()
    ensure_completed(row)
    return row


async def measure_throughput(stack: BenchStack, *, agents: int, messages: int) -> ThroughputReport:
    set_policy(stack, ONE_STEP)
    ids = [(await stack.create_agent(name=f"bench-tp-{i}")).id for i in range(agents)]
    # One turn each first: the agents' workflows exist and the pools are warm, as on a running server.
    for row in await asyncio.gather(*(_warm(stack, a) for a in ids)):
        ensure_completed(row)

    sent: dict[str, float] = {}
    done: dict[str, float] = {}
    with _worker_statements(stack) as statements:
        before = cpu_seconds(stack.processes())
        t0 = time.perf_counter()
        per_agent = await asyncio.gather(*(_send_all(stack, a, messages, sent) for a in ids))
        submitted = time.perf_counter()
        rows = await asyncio.gather(*(_wait(stack, r, done) for runs in per_agent for r in runs))
        wall = time.perf_counter() - t0
        after = cpu_seconds(stack.processes())

    total = agents * messages
    by_id = {r.id: r for r in rows}
    in_order = all(
        all(by_id[a].completed_at <= by_id[b].completed_at for a, b in zip(runs, runs[1:], strict=False))  # type: ignore[operator]
        for runs in per_agent
    )
    shared = {"bench", "worker"} if stack.worker_mode == "inprocess" else None
    cpu = cpu_delta_ms(before, after, total, shared=shared)
    report = ThroughputReport(
        agents=agents,
        messages_per_agent=messages,
        turn_kind=ONE_STEP.label,
        msgs_per_s=round(total / wall, 2),
        wall_s=round(wall, 3),
        submit_wall_s=round(submitted - t0, 3),
        message_latency_ms=summarize([(done[r] - sent[r]) * 1000 for r in sent]),
        each_agent_in_order=in_order,
        cpu_ms_per_message=cpu,
        cpu_ms_per_message_total=round(sum(cpu.values()), 2),
        worker_sql_statements_per_message=round(statements[0] / total, 2) if statements else None,
        note="all messages submitted at once (each agent's back to back); agents warmed with one turn first",
    )
    print(
        f"throughput: {report.msgs_per_s} msgs/s ({total} in {report.wall_s}s)", file=sys.stderr, flush=True
    )
    return report


@contextlib.contextmanager
def _worker_statements(stack: BenchStack) -> Iterator[list[int]]:
    """Count the SQL statements of engines other than the benchmark's own (the worker's, when it runs
    in this process); yields `[count]`, or an empty list when the worker is another process."""
    if stack.worker_mode != "inprocess":
        yield []
        return
    counted = [0]
    mine = stack.db.engine.sync_engine

    def count(conn: sa.Connection, *_: Any) -> None:
        if conn.engine is not mine:
            counted[0] += 1

    sa.event.listen(sa.Engine, "before_cursor_execute", count)
    try:
        yield counted
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", count)


async def _warm(stack: BenchStack, agent_id: str) -> RunRow:
    run = await stack.runs.send(agent_id, [{"role": "user", "content": "warm-up"}])
    return await wait_run(stack, run.id)
