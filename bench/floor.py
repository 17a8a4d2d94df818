"""Measuring Temporal's floor (the no-op workflows of bench/baseline.py) on the benchmark's dev server."""

from __future__ import annotations

import time

from pydantic import BaseModel
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from bench.baseline import OneActivity, RunShape, new_id, noop
from bench.stack import BenchStack
from bench.stats import Summary, cpu_seconds, summarize
from worker.main import SANDBOX_PASSTHROUGH

WARMUP = 3


class FloorCase(BaseModel):
    latency_ms: Summary
    temporal_cpu_ms_per_workflow: float


class FloorReport(BaseModel):
    one_activity: FloorCase
    run_shape: FloorCase
    note: str


async def _case(stack: BenchStack, worker: Worker, workflow: str, n: int) -> FloorCase:
    async def once() -> float:
        t0 = time.perf_counter()
        await stack.client.execute_workflow(
            workflow, "x", id=new_id("bench-floor"), task_queue=worker.task_queue
        )
        return (time.perf_counter() - t0) * 1000

    for _ in range(WARMUP):
        await once()
    procs = {"temporal": stack.processes()["temporal"]}
    before = cpu_seconds(procs)
    times = [await once() for _ in range(n)]
    after = cpu_seconds(procs)
    cpu = (after["temporal"] - before["temporal"]) * 1000 / n
    return FloorCase(latency_ms=summarize(times), temporal_cpu_ms_per_workflow=round(cpu, 2))


async def measure_floor(stack: BenchStack, *, n: int) -> FloorReport:
    worker = Worker(
        stack.client,
        task_queue=new_id("bench-floor"),
        workflows=[OneActivity, RunShape],
        activities=[noop],
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*SANDBOX_PASSTHROUGH)
        ),
    )
    async with worker:
        one = await _case(stack, worker, "BenchOneActivity", n)
        shape = await _case(stack, worker, "BenchRunShape", n)
    return FloorReport(
        one_activity=one,
        run_shape=shape,
        note=(
            "no-op activities, client execute_workflow -> result, worker in the benchmark process with "
            "Mnemo's sandbox settings; a 1-step turn is an update-with-start on the agent workflow plus "
            "a child workflow of run_shape's shape"
        ),
    )
