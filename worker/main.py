"""The worker process: builds a Worker from worker/registry.py and runs it until told to stop."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from mnemo.config import Settings, get_settings
from mnemo.stack import WORKER_READY_MARKER
from worker import registry
from worker.client import connect

log = logging.getLogger("mnemo.worker")

# Printed once the worker polls; `mnemo up` waits for this line in the worker's log.
READY_MARKER = WORKER_READY_MARKER

# Modules workflows may import without the sandbox re-importing them per run: pydantic models
# cross the boundary, and mnemo's own modules are deterministic data and helpers.
SANDBOX_PASSTHROUGH: tuple[str, ...] = ("pydantic", "pydantic_core", "annotated_types", "mnemo")

# Sync activities (if any) run in this many threads; async ones need no executor.
SYNC_ACTIVITY_THREADS = 16
CONNECT_TIMEOUT_S = 60.0
STICKY_TIMEOUT_S = 2.0

Closer = Callable[[], Awaitable[None]]


def _is_async(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    # A callable instance: its class's __call__ decides.
    return not inspect.isroutine(fn) and inspect.iscoroutinefunction(type(fn).__call__)


async def build_worker(
    client: Client,
    settings: Settings,
    task_queue: str | None = None,
    *,
    database_url: str | None = None,
    extra_tools: dict[str, Any] | None = None,
) -> tuple[Worker, Closer]:
    """A Worker with every registered workflow and activity, and a closer for what they hold.

    `extra_tools` adds in-process Python tools (`mnemo.runtime.tools.InProcessTool`) by name.
    """
    activities, close_activities = await registry.activities(
        settings, extra_tools=extra_tools, database_url=database_url
    )
    workflows: Sequence[type] = registry.workflows()
    executor: ThreadPoolExecutor | None = None
    extra: dict[str, Any] = {}
    if any(not _is_async(fn) for fn in activities):
        executor = ThreadPoolExecutor(max_workers=SYNC_ACTIVITY_THREADS, thread_name_prefix="activity")
        extra = {"activity_executor": executor, "max_concurrent_activities": SYNC_ACTIVITY_THREADS}
    worker = Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=workflows,
        activities=activities,
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*SANDBOX_PASSTHROUGH)
        ),
        graceful_shutdown_timeout=timedelta(seconds=10),
        # After a worker dies, its runs' next workflow tasks wait this long on its private (sticky)
        # queue before any other worker may take them: the default 10 s dominated crash recovery.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=STICKY_TIMEOUT_S),
        **extra,
    )

    async def close() -> None:
        result = close_activities()
        if inspect.isawaitable(result):
            await result
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    return worker, close


async def _connect_with_retry(settings: Settings, stop: asyncio.Event) -> Client | None:
    """Temporal may still be starting (compose, `mnemo up`): retry for a while before giving up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONNECT_TIMEOUT_S
    while True:
        try:
            return await connect(settings)
        except Exception as exc:
            if loop.time() >= deadline:
                raise RuntimeError(
                    f"cannot reach Temporal at {settings.temporal_target} after {CONNECT_TIMEOUT_S:.0f}s "
                    f"({exc}); start it with `mnemo up` or set TEMPORAL_ADDRESS"
                ) from exc
            log.warning("Temporal at %s not reachable yet (%s); retrying", settings.temporal_target, exc)
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
            return None
        except TimeoutError:
            pass


async def _run(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    client = await _connect_with_retry(settings, stop)
    if client is None:
        return 0
    worker, close = await build_worker(client, settings)
    try:
        async with worker:
            print(
                f"{READY_MARKER}: task queue {worker.task_queue!r} on {settings.temporal_target} "
                f"(namespace {settings.temporal_namespace}), pid {os.getpid()}",
                flush=True,
            )
            await stop.wait()
            log.info("shutting down: finishing in-flight tasks")
    finally:
        await close()
    return 0


def run_forever() -> None:
    """Run one worker in the foreground until SIGTERM/SIGINT, then shut down gracefully."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code = asyncio.run(_run(get_settings()))
    except Exception as exc:
        log.error("worker failed: %s", exc, exc_info=not isinstance(exc, RuntimeError))
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # temporalio's core runtime can crash during interpreter teardown (sdk-python#300): skip it.
    os._exit(code)
