"""The worker process: builds a Worker from worker/registry.py and runs it until told to stop."""

from __future__ import annotations

import asyncio
import compileall
import gc
import inspect
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.client import Client
from temporalio.converter import DataConverter, SerializationContext, StorageDriverStoreContext
from temporalio.worker import (
    Worker,
    WorkflowInstance,
    WorkflowInstanceDetails,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from mnemo.config import Settings, get_settings
from mnemo.stack import WORKER_READY_MARKER
from worker import registry
from worker.client import connect

log = logging.getLogger("mnemo.worker")

# Printed once the worker polls; `mnemo up` waits for this line in the worker's log.
READY_MARKER = WORKER_READY_MARKER

# Modules workflows may import without the sandbox re-importing them per run: pydantic models
# cross the boundary, mnemo's own modules are deterministic data and helpers, and the workflow names
# are constants.
SANDBOX_PASSTHROUGH: tuple[str, ...] = (
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "mnemo",
    "workflows.names",
)

# Sync activities (if any) run in this many threads; async ones need no executor.
SYNC_ACTIVITY_THREADS = 16
CONNECT_TIMEOUT_S = 60.0
STICKY_TIMEOUT_S = 2.0

Closer = Callable[[], Awaitable[None]]


class _ContextFreeInstance(WorkflowInstance):
    """A sandboxed workflow instance that answers the serialization and storage context questions
    itself instead of entering the sandbox for each one.

    The worker asks them for every payload of every activation and completion (~50 per run), and each
    answer costs a trip into the sandbox (~0.1 ms). They only matter to a payload codec or external
    storage, which Mnemo's data converter has neither of (see `workflow_runner`); payloads themselves
    are converted inside the sandbox either way. `None` is the documented "no context" answer.
    """

    def __init__(self, inner: WorkflowInstance) -> None:
        self._inner = inner

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        return self._inner.activate(act)

    def get_serialization_context(self, command_info: Any) -> SerializationContext | None:
        return None

    def get_external_store_context(self, command_info: Any) -> StorageDriverStoreContext:
        return StorageDriverStoreContext(target=None)

    def get_info(self) -> workflow.Info:
        return self._inner.get_info()

    def get_thread_id(self) -> int | None:
        return self._inner.get_thread_id()


class _ContextFreeSandboxedRunner(SandboxedWorkflowRunner):
    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _ContextFreeInstance(super().create_instance(det))


def workflow_runner(data_converter: DataConverter) -> WorkflowRunner:
    """The sandbox, with Mnemo's passthrough modules; without per-payload context lookups when the
    data converter has no codec and no external storage (the only users of those contexts)."""
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*SANDBOX_PASSTHROUGH)
    if data_converter.payload_codec is None and data_converter.external_storage is None:
        return _ContextFreeSandboxedRunner(restrictions=restrictions)
    return SandboxedWorkflowRunner(restrictions=restrictions)


def cache_workflow_bytecode(workflows: Sequence[type]) -> None:
    """Write the bytecode of the workflows' packages next to their source, once.

    The sandbox re-imports a workflow's module for every new workflow run. With bytecode writing off
    (PYTHONDONTWRITEBYTECODE, as in the Docker image) each of those imports compiled the source again
    (~1.5 ms per run); an import reads a cached file even when it may not write one. Best effort: a
    read-only checkout just keeps compiling.
    """
    if not sys.dont_write_bytecode:
        return  # the worker's own imports wrote it
    folders = {os.path.dirname(path) for cls in workflows if (path := inspect.getsourcefile(cls))}
    for folder in sorted(folders):
        compileall.compile_dir(folder, maxlevels=0, quiet=2)


def freeze_startup_objects() -> None:
    """Keep what the worker loaded at startup out of the garbage collector's full collections.

    litellm, SQLAlchemy and temporalio leave ~500k long-lived objects; every full collection walked
    them all (~0.3 s of CPU, every ~100 turns: ~3 ms per turn, and a 0.3 s stall in some turn).
    """
    gc.collect()
    gc.freeze()


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
    cache_workflow_bytecode(workflows)
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
        workflow_runner=workflow_runner(client.data_converter),
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
    freeze_startup_objects()
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
