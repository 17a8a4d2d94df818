"""Chaos fixtures: components the chaos suite owns, so a test can SIGKILL or restart them.

- `chaos_pg` (session): an embedded Postgres on a data directory of its own (never the session's
  shared server), which a test may stop and start.
- `chaos_temporal`: a Temporal dev server per test, on a fixed port with a SQLite file, so a restart
  on the same port keeps every workflow and its history.
- `chaos`: a `Chaos` harness per test: a fresh migrated database on `chaos_pg`, a Temporal client and a
  `RunService` in the test process, a worker in a subprocess (`python -m tests.chaos.worker_proc`) and
  the session's fake LLM (on 127.0.0.1, so the worker reaches it).

Every process started here is reaped at teardown, and a finalizer fails the test if any of them, or
any process mentioning the test's temporary directories, is still there.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest
from temporalio.client import Client

from api.runs import RunService
from mnemo.config import Settings
from mnemo.fakellm import FakeLLM
from mnemo.store import embedded
from mnemo.store.db import Database, with_database
from tests.chaos.harness import CHAOS_POLICY, TOOL_SLEEP_S, Chaos
from tests.chaos.processes import ChaosPostgres, TemporalDevServer, WorkerProcess, gone, worker_env
from worker.client import connect

CONNECT_TIMEOUT_S = 20.0


def _leftovers(pids: list[int], marker: str) -> list[str]:
    """Processes we started that still exist, and any process whose command line names our tmp dir."""
    found = [f"pid {pid} still running" for pid in pids if not gone(pid)]
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            if marker in " ".join(proc.info["cmdline"] or ()):
                found.append(
                    f"pid {proc.info['pid']} {proc.info['status']}: {' '.join(proc.info['cmdline'])}"
                )
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if child.pid in pids and child.status() == psutil.STATUS_ZOMBIE:
                found.append(f"unreaped child {child.pid}")
    return found


@pytest.fixture(scope="session")
def chaos_pg() -> Iterator[ChaosPostgres]:
    # pg_ctl orphans the postmaster; adopting it lets `embedded.stop` reap it (no zombie).
    embedded.adopt_orphans()
    root = Path(tempfile.mkdtemp(prefix="mnemo-chaos-pg-"))
    pg = ChaosPostgres(root / "pgdata")
    try:
        pg.start()
        yield pg
    finally:
        with contextlib.suppress(Exception):
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)
        left = _leftovers(pg.postmaster_pids, str(root))
        assert not left, f"chaos Postgres left processes behind: {left}"


@pytest.fixture
def chaos_temporal(tmp_path: Path) -> Iterator[TemporalDevServer]:
    server = TemporalDevServer(tmp_path / "temporal")
    try:
        server.start()
        yield server
    finally:
        server.kill()  # its state is thrown away; a graceful stop only costs time
        left = _leftovers(server.pids, str(server.directory))
        assert not left, f"chaos Temporal server left processes behind: {left}"


async def _connect(address: str) -> Client:
    # TCP accepts a moment before the frontend serves; retry until it answers.
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        try:
            return await connect(Settings(TEMPORAL_ADDRESS=address))
        except RuntimeError:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.fixture
async def chaos(
    request: pytest.FixtureRequest,
    chaos_pg: ChaosPostgres,
    chaos_temporal: TemporalDevServer,
    fake_llm: FakeLLM,
    tmp_path: Path,
) -> AsyncIterator[Chaos]:
    # Parametrize indirectly with True to run the model and tool calls as local activities.
    policy = CHAOS_POLICY.model_copy(update={"local_activities": bool(getattr(request, "param", False))})
    name = f"chaos_{uuid.uuid4().hex[:12]}"
    database_url = with_database(chaos_pg.admin_url, name)
    task_queue = f"chaos-{uuid.uuid4()}"
    counter = tmp_path / "side_effects.txt"
    counter.touch()
    env = worker_env(
        database_url,
        chaos_temporal.address,
        task_queue,
        counter,
        tmp_path / "home",
        TOOL_SLEEP_S,
        fake_llm.base_url,
    )
    workers = WorkerProcess(tmp_path / "workers", env)
    workers.directory.mkdir()
    # The worker imports for seconds and touches the database only when work arrives: spawn it first.
    workers.prepare()
    try:
        chaos_pg.create_database(name)
        client = await _connect(chaos_temporal.address)
        db = Database(database_url, pool_size=5)
        runs = RunService(client, db, task_queue, policy)
        await runs.start()
    except BaseException:
        workers.stop_all()
        raise
    try:
        workers.start()
        yield Chaos(
            temporal=chaos_temporal,
            pg=chaos_pg,
            workers=workers,
            fake=fake_llm,
            client=client,
            db=db,
            runs=runs,
            counter=counter,
            task_queue=task_queue,
        )
    finally:
        workers.stop_all()
        await runs.close()
        await db.dispose()
        # The test's database is not dropped: it goes with the chaos server's data directory.
        left = _leftovers([p.pid for p in workers.procs], str(workers.directory))
        assert not left, f"chaos workers left processes behind: {left}"
