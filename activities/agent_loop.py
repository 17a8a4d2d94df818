"""The agent loop's activities. Thin: each takes one input model and calls into `mnemo.runtime`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import psycopg
import sqlalchemy.exc
from temporalio import activity
from temporalio.exceptions import ApplicationError

from mnemo.llm.client import Delta
from mnemo.llm.errors import ContextWindowExceeded, LLMError
from mnemo.memory.compaction import SystemPromptTooLarge
from mnemo.runtime import events
from mnemo.runtime.approvals import deny_pending
from mnemo.runtime.compact import compact
from mnemo.runtime.context import assistant_message_id, step_id
from mnemo.runtime.letta_messages import partial_message
from mnemo.runtime.runs import finish_run, send_callback, start_run
from mnemo.runtime.step import run_step
from mnemo.runtime.tools import InProcessTool, execute_tool
from mnemo.schemas.runs import (
    CallbackInput,
    CompactInput,
    CompactOutcome,
    DenyApprovals,
    FinishInput,
    FinishOutcome,
    ResumePoint,
    RunInput,
    StepInput,
    StepOutcome,
    ToolInput,
    ToolOutcome,
)
from mnemo.store.db import Database

DELTA_FLUSH_S = 0.05


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeat for the whole activity, so a dead worker is noticed within the heartbeat timeout.
    Local activities cannot heartbeat: their workflow task's timeout plays that part."""
    if activity.info().is_local:
        yield
        return
    timeout = activity.info().heartbeat_timeout
    interval = max(0.2, timeout.total_seconds() / 3) if timeout else 5.0

    async def beat() -> None:
        # Not at once: the server times the first heartbeat from the activity's start, so a beat at
        # the start only cost one more RPC (and server-side state write) for every step.
        while True:
            await asyncio.sleep(interval)
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


@contextlib.contextmanager
def database_errors_retryable() -> Iterator[None]:
    """A lost database connection becomes a short, retryable failure that says so. Raised `from None`:
    the driver's chained tracebacks would exceed Temporal's failure size limit and hide the cause."""
    try:
        yield
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, psycopg.OperationalError) as exc:
        first_line = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else type(exc).__name__
        raise ApplicationError(f"database unavailable: {first_line}", type="DatabaseUnavailable") from None


def _llm_failure(err: LLMError) -> ApplicationError:
    kind = "ContextWindowExceeded" if isinstance(err, ContextWindowExceeded) else err.error_type
    return ApplicationError(
        err.message,
        {"status": err.status, "error_type": err.error_type},
        type=kind,
        non_retryable=not err.retryable,
        next_retry_delay=timedelta(seconds=err.retry_after) if err.retry_after else None,
    )


class AgentLoopActivities:
    def __init__(self, db: Database, extra_tools: dict[str, InProcessTool] | None = None) -> None:
        self.db = db
        self.extra_tools = extra_tools if extra_tools is not None else {}

    def _delta_sink(self, inp: StepInput, agent_type: str) -> Callable[[Delta], Awaitable[None]]:
        """Token deltas as partial Letta messages in the event log, batched so a token is not a commit."""
        attempt = activity.info().attempt
        mid = assistant_message_id(inp.run_id, inp.step_index)
        base = {"id": mid, "run_id": inp.run_id, "step_id": step_id(inp.run_id, inp.step_index)}
        pending: list[dict[str, Any]] = []
        last = time.monotonic()

        async def flush() -> None:
            nonlocal last
            batch = pending[:]
            pending.clear()
            last = time.monotonic()
            if batch:
                async with self.db.transaction() as s:
                    await events.append(s, inp.run_id, batch)

        async def on_delta(delta: Delta | None) -> None:
            if delta is not None:
                pending.append(
                    {**base, **partial_message(delta, agent_type), "delta": True, "attempt": attempt}
                )
            if delta is None or time.monotonic() - last >= DELTA_FLUSH_S:
                await flush()

        return on_delta

    @activity.defn(name="runs.start")
    async def runs_start(self, inp: RunInput) -> ResumePoint:
        with database_errors_retryable():
            return await start_run(self.db, inp)

    @activity.defn(name="runs.finish")
    async def runs_finish(self, inp: FinishInput) -> FinishOutcome:
        with database_errors_retryable():
            return await finish_run(self.db, inp)

    @activity.defn(name="runs.callback")
    async def runs_callback(self, inp: CallbackInput) -> None:
        with database_errors_retryable():
            try:
                await send_callback(
                    self.db, inp.run_id, final_attempt=activity.info().attempt >= inp.max_attempts
                )
            except RuntimeError as exc:
                raise ApplicationError(str(exc), type="CallbackFailed") from None

    @activity.defn(name="llm.step")
    async def llm_step(self, inp: StepInput) -> StepOutcome:
        async with heartbeating():
            with database_errors_retryable():
                try:
                    return await run_step(self.db, inp, on_delta_factory=self._delta_sink)
                except LLMError as err:
                    raise _llm_failure(err) from err

    @activity.defn(name="memory.compact")
    async def memory_compact(self, inp: CompactInput) -> CompactOutcome:
        async with heartbeating():
            with database_errors_retryable():
                try:
                    return await compact(self.db, inp)
                except SystemPromptTooLarge as err:
                    raise ApplicationError(
                        str(err), type="SystemPromptTooLarge", non_retryable=True
                    ) from None
                except LLMError as err:
                    raise _llm_failure(err) from err

    @activity.defn(name="approvals.deny")
    async def approvals_deny(self, inp: DenyApprovals) -> int:
        with database_errors_retryable():
            return await deny_pending(self.db, inp)

    @activity.defn(name="tools.execute")
    async def tools_execute(self, inp: ToolInput) -> ToolOutcome:
        async with heartbeating():
            with database_errors_retryable():
                return await execute_tool(self.db, inp, self.extra_tools)
