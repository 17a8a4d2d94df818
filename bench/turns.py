"""Turn latency (send -> wait returns) for one agent's sequential turns, history size per step, and where
the time goes."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlmodel import col, select

from bench.profiling import profiled
from bench.stack import BenchStack
from bench.stats import Summary, cpu_delta_ms, cpu_seconds, summarize
from bench.timeline import SEGMENTS, bytes_by_event, history_bytes, run_segments
from mnemo.store.tables import RunRow, StepRow
from workflows import names

RUN_TIMEOUT_S = 120.0


class BenchError(RuntimeError):
    """A run the benchmark drove did not complete: its figures would be meaningless."""


class TurnKind(BaseModel):
    """What the fake LLM does for each turn: `echo` = one text step; `tool_then_text` = tool, then text."""

    label: str
    policy: str = "echo"
    tool_name: str | None = None
    arguments: dict[str, Any] = {}
    tools: list[str] = []


ONE_STEP = TurnKind(label="1step")
TWO_STEP_SEARCH = TurnKind(
    label="2step_conversation_search",
    policy="tool_then_text",
    tool_name="conversation_search",
    arguments={"query": "message"},
)
TWO_STEP_MEMORY = TurnKind(
    label="2step_memory_insert",
    policy="tool_then_text",
    tool_name="memory_insert",
    arguments={"label": "human", "new_string": "Likes tea."},
)


class TurnReport(BaseModel):
    kind: str
    agent_id: str
    latency_ms: Summary
    # Least-squares slope of latency over the measured turns: > 0 means turns get slower as the
    # conversation grows.
    latency_slope_ms_per_turn: float
    steps_per_turn: float
    history_bytes_per_step: float
    # One run's RunWorkflow history by event type: what the bytes per step are made of.
    history_bytes_by_event: dict[str, int]
    agent_history_bytes_per_run: float
    breakdown_p50_ms: dict[str, float]
    cpu_ms_per_turn: dict[str, float]


@dataclass
class Sample:
    run_id: str
    sent_at: float  # wall clock, to compare with server timestamps
    done_at: float
    latency_ms: float


def set_policy(stack: BenchStack, kind: TurnKind) -> None:
    if kind.policy == "echo":
        stack.fake.set_policy("echo")
    else:
        stack.fake.set_policy("tool_then_text", tool_name=kind.tool_name, arguments=kind.arguments)


def ensure_completed(run: RunRow) -> None:
    if run.status != "completed" or run.stop_reason != "end_turn":
        error = (run.metadata_ or {}).get("error")
        raise BenchError(f"run {run.id} ended {run.status}/{run.stop_reason}: {error}")


async def stuck(stack: BenchStack, run_id: str) -> str:
    """What a run that did not finish is doing, from Temporal's point of view."""
    try:
        desc = await stack.client.get_workflow_handle(names.run_workflow_id(run_id)).describe()
    except Exception as exc:
        return f"no run workflow ({exc})"
    pending = [
        f"{a.activity_type.name} attempt {a.attempt} state {a.state} last failure {a.last_failure.message!r}"
        for a in desc.raw_description.pending_activities
    ]
    return f"workflow {desc.status.name if desc.status else '?'}; pending activities: {pending or 'none'}"


async def wait_run(stack: BenchStack, run_id: str) -> RunRow:
    try:
        return await stack.runs.wait(run_id, timeout=RUN_TIMEOUT_S)
    except TimeoutError as exc:
        raise BenchError(f"{exc}: {await stuck(stack, run_id)}") from exc


async def one_turn(stack: BenchStack, agent_id: str, text: str) -> tuple[Sample, RunRow]:
    sent_at = time.time()
    t0 = time.perf_counter()
    run = await stack.runs.send(agent_id, [{"role": "user", "content": text}])
    row = await wait_run(stack, run.id)
    latency = (time.perf_counter() - t0) * 1000
    ensure_completed(row)
    return Sample(run.id, sent_at, time.time(), latency), row


async def _segments(
    stack: BenchStack, samples: list[Sample]
) -> tuple[dict[str, float], list[int], list[int], dict[str, int]]:
    """Median ms per timeline segment, each run's history bytes and step count, and the last run's
    history bytes by event type."""
    by_event: dict[str, int] = {}
    per_segment: dict[str, list[float]] = {}
    sizes: list[int] = []
    steps: list[int] = []
    for sample in samples:
        handle = stack.client.get_workflow_handle(names.run_workflow_id(sample.run_id))
        # The client hears of the run's end from Postgres, before the workflow has recorded it.
        await asyncio.wait_for(handle.result(), timeout=RUN_TIMEOUT_S)
        history = await handle.fetch_history()
        async with stack.db.session() as s:
            run = await s.get(RunRow, sample.run_id)
            rows = (
                await s.exec(
                    select(StepRow).where(StepRow.run_id == sample.run_id).order_by(col(StepRow.step_index))
                )
            ).all()
        if run is None or run.completed_at is None:
            raise BenchError(f"run {sample.run_id} has no completion time")
        windows = [(r.created_at, r.completed_at) for r in rows if r.completed_at is not None]
        seg = run_segments(
            history,
            sent_at=sample.sent_at,
            done_at=sample.done_at,
            finished_at=run.completed_at,
            step_windows=windows,
        )
        for key, value in seg.items():
            per_segment.setdefault(key, []).append(value)
        sizes.append(history_bytes(history))
        steps.append(len(rows))
        by_event = bytes_by_event(history)
    order = [*SEGMENTS, "llm_step_inner"]
    medians = {key: round(statistics.median(per_segment[key]), 2) for key in order if key in per_segment}
    return medians, sizes, steps, by_event


async def measure_turns(
    stack: BenchStack, kind: TurnKind, *, n: int, warmup: int, profile: str | None = None
) -> TurnReport:
    """`warmup` unmeasured turns, then `n` measured ones, on a fresh agent.

    `profile`: a file to write a cProfile of this process during the measured turns to.
    """
    agent = await stack.create_agent(name=f"bench-{kind.label}", tools=kind.tools)
    set_policy(stack, kind)
    for i in range(warmup):
        await one_turn(stack, agent.id, f"warm-up message {i}")
    before = cpu_seconds(stack.processes())
    samples: list[Sample] = []
    with profiled(profile):
        for i in range(n):
            sample, _ = await one_turn(stack, agent.id, f"message {i}")
            samples.append(sample)
    after = cpu_seconds(stack.processes())
    shared = {"bench", "worker"} if stack.worker_mode == "inprocess" else None
    cpu = cpu_delta_ms(before, after, n, shared=shared)
    breakdown, sizes, steps, by_event = await _segments(stack, samples)
    agent_history = await stack.client.get_workflow_handle(names.agent_workflow_id(agent.id)).fetch_history()
    latencies = [s.latency_ms for s in samples]
    slope = statistics.linear_regression(range(n), latencies).slope if n >= 2 else 0.0
    report = TurnReport(
        kind=kind.label,
        agent_id=agent.id,
        latency_ms=summarize(latencies),
        latency_slope_ms_per_turn=round(slope, 3),
        steps_per_turn=round(statistics.fmean(steps), 2),
        history_bytes_per_step=round(sum(sizes) / max(sum(steps), 1), 1),
        history_bytes_by_event=by_event,
        agent_history_bytes_per_run=round(history_bytes(agent_history) / (warmup + n), 1),
        breakdown_p50_ms=breakdown,
        cpu_ms_per_turn=cpu,
    )
    print(
        f"turns {kind.label}: p50 {report.latency_ms.p50} ms, p95 {report.latency_ms.p95} ms (n={n})",
        file=sys.stderr,
        flush=True,
    )
    return report
