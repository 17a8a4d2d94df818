"""A real Mnemo worker in its own process, for the chaos suite to SIGKILL.

    python -m tests.chaos.worker_proc

Reads DATABASE_URL, TEMPORAL_ADDRESS and MNEMO_TASK_QUEUE like `mnemo worker`, and registers one
extra in-process tool, `count_side_effect`, which appends a line to CHAOS_COUNTER_FILE and then sleeps
CHAOS_TOOL_SLEEP_S seconds: a kill during the sleep lands after the side effect happened, which is
exactly the case "at most once" is about. Prints `READY_MARKER` once its pollers run.

With CHAOS_STANDBY=1 it connects and builds its Worker, prints `STANDBY_MARKER`, and only starts polling
on SIGUSR1. A test pre-warms a replacement this way, so "start a new worker after the kill" is not
dominated by importing litellm (several seconds on the project's 2-core machines); from Temporal's side
it is still a new worker (a new identity) that begins polling after the old one died.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

# litellm must not fetch its price list from the network; set before anything imports it.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from mnemo.config import Settings  # noqa: E402
from mnemo.runtime.tools import InProcessTool  # noqa: E402
from worker.client import connect  # noqa: E402
from worker.main import READY_MARKER, build_worker  # noqa: E402

COUNTER_ENV = "CHAOS_COUNTER_FILE"
SLEEP_ENV = "CHAOS_TOOL_SLEEP_S"
STANDBY_ENV = "CHAOS_STANDBY"
STANDBY_MARKER = "chaos worker on standby"
TOOL_NAME = "count_side_effect"

log = logging.getLogger("mnemo.chaos.worker")


def counting_tool(counter: Path, sleep_s: float) -> InProcessTool:
    async def count_side_effect(label: str = "", **_: Any) -> str:
        # The side effect first, durable in the page cache before the sleep: SIGKILL cannot undo it.
        with counter.open("a") as fh:
            fh.write(f"{label} pid={os.getpid()}\n")
        await asyncio.sleep(sleep_s)
        return f"counted {label}"

    return InProcessTool(TOOL_NAME, count_side_effect, idempotent=False)


async def _connect(settings: Settings, attempts: int = 100) -> Any:
    # The chaos tests may start a worker while Temporal is restarting: retry for ~20 s.
    for attempt in range(attempts):
        try:
            return await connect(settings)
        except Exception as exc:  # connection refused while the server is down
            if attempt == attempts - 1:
                raise
            log.warning("Temporal not reachable yet (%s); retrying", exc)
            await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


async def _run() -> int:
    settings = Settings()
    if not (settings.database_url and settings.temporal_address):
        raise RuntimeError("worker_proc needs DATABASE_URL and TEMPORAL_ADDRESS")
    counter = Path(os.environ[COUNTER_ENV])
    sleep_s = float(os.environ.get(SLEEP_ENV, "0"))
    stop, go = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, go.set)
    client = await _connect(settings)
    worker, close = await build_worker(
        client,
        settings,
        settings.task_queue,
        database_url=settings.database_url,
        extra_tools={TOOL_NAME: counting_tool(counter, sleep_s)},
    )
    try:
        if os.environ.get(STANDBY_ENV) == "1":
            print(f"{STANDBY_MARKER}: pid {os.getpid()}", flush=True)
            waits = [asyncio.create_task(go.wait()), asyncio.create_task(stop.wait())]
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if stop.is_set():
                return 0
        async with worker:
            print(f"{READY_MARKER}: task queue {worker.task_queue!r}, pid {os.getpid()}", flush=True)
            await stop.wait()
    finally:
        await close()
    return 0


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code = asyncio.run(_run())
    except Exception:
        log.exception("chaos worker failed")
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # temporalio's core runtime can crash during interpreter teardown (sdk-python#300).
    os._exit(code)


if __name__ == "__main__":
    main()
