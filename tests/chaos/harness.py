"""The `Chaos` harness a chaos test drives: components to break, and bounded waits that fail with the
components' logs when something hangs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import select
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import Client

from api.runs import RunService
from mnemo.fakellm import FakeLLM
from mnemo.ids import new_id
from mnemo.runtime.agents import create_agent
from mnemo.schemas.agents import CreateAgent
from mnemo.store.db import Database
from mnemo.store.tables import AgentRow, RunRow, StepRow, ToolRow
from tests.chaos.processes import ChaosPostgres, TemporalDevServer, WorkerProcess, log_tail
from tests.chaos.worker_proc import TOOL_NAME
from tests.fixtures.mnemo import TEST_POLICY, fake_llm_config, make_settings
from workflows import names

# Seconds the counting tool sleeps after its side effect: the window a test kills the worker in.
TOOL_SLEEP_S = 3.0

# TEST_POLICY (3 s heartbeat timeouts, so a dead worker's model or tool call is retried within seconds)
# with a bigger attempt budget: every failed attempt during a Postgres outage spends it, and 20
# attempts at <= 1 s apart outlast a Postgres restart (~3 s for pgserver).
# Regular activities by default: the infra tests watch the step's attempts through pending activities.
CHAOS_POLICY = TEST_POLICY.model_copy(update={"llm_max_attempts": 20, "local_activities": False})

COUNTING_TOOL_SCHEMA = {
    "name": TOOL_NAME,
    "description": "Record that something happened (a side effect that must happen at most once).",
    "parameters": {
        "type": "object",
        "properties": {"label": {"type": "string", "description": "What to record."}},
        "required": ["label"],
    },
}

RUN_TIMEOUT_S = 60.0
ARRIVAL_TIMEOUT_S = 30.0


@dataclass
class Chaos:
    temporal: TemporalDevServer
    pg: ChaosPostgres
    workers: WorkerProcess
    fake: FakeLLM
    client: Client
    db: Database
    runs: RunService
    counter: Path
    task_queue: str

    # --- setup ------------------------------------------------------------------------------------

    async def create_agent(self, **kwargs: Any) -> AgentRow:
        kwargs.setdefault("llm_config", fake_llm_config(self.fake))
        async with self.db.transaction() as s:
            return await create_agent(s, CreateAgent(**kwargs), make_settings(self.db.url, self.task_queue))

    async def add_counting_tool(self) -> None:
        async with self.db.transaction() as s:
            s.add(
                ToolRow(
                    id=new_id("tool"), name=TOOL_NAME, tool_type="custom", json_schema=COUNTING_TOOL_SCHEMA
                )
            )

    async def send(self, agent_id: str, text: str) -> str:
        run = await self.runs.send(agent_id, [{"role": "user", "content": text}])
        return run.id

    # --- observation --------------------------------------------------------------------------------

    def worker_alive(self) -> bool:
        proc = self.workers.current
        return proc is not None and proc.poll() is None

    def diagnostics(self) -> str:
        return f"{self.workers.logs()}\n--- temporal ---\n{log_tail(self.temporal.log_path)}"

    async def until(
        self, check: Callable[[], Awaitable[bool]], what: str, within_s: float = ARRIVAL_TIMEOUT_S
    ) -> float:
        """Poll an async check; return how long it took (for the report, never asserted)."""
        start = time.monotonic()
        while not await check():
            if time.monotonic() - start > within_s:
                raise AssertionError(f"{what}: not within {within_s:.0f}s\n{self.diagnostics()}")
            await asyncio.sleep(0.02)
        return time.monotonic() - start

    async def chat_requests_reach(self, n: int) -> float:
        async def arrived() -> bool:
            return len(self.fake.chat_requests) >= n

        return await self.until(arrived, f"model request #{n} to arrive at the fake LLM")

    async def counter_lines(self) -> list[str]:
        return self.counter.read_text().splitlines()

    async def step_status(self, run_id: str, index: int) -> str | None:
        async with self.db.session() as s:
            row = (
                await s.exec(select(StepRow).where(StepRow.run_id == run_id, StepRow.step_index == index))
            ).one_or_none()
        return row.status if row else None

    async def pending_activities(self, run_id: str) -> list[PendingActivityInfo]:
        desc = await self.client.get_workflow_handle(names.run_workflow_id(run_id)).describe()
        return list(desc.raw_description.pending_activities)

    async def wait_run(self, run_id: str, within_s: float = RUN_TIMEOUT_S) -> RunRow:
        try:
            return await self.runs.wait(run_id, timeout=within_s)
        except TimeoutError as exc:
            raise AssertionError(f"run {run_id} did not finish: {exc}\n{self.diagnostics()}") from exc
