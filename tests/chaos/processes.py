"""The real processes the chaos suite owns so that it can break them: a Temporal dev server, an
embedded Postgres and Mnemo workers. Every process started here is reaped here (`Popen.wait`, or
`embedded.stop` for the postmaster the session adopted), and its PID is kept so a finalizer can prove
nothing was left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

from mnemo.search_attributes import dev_server_flags
from mnemo.stack.temporal_server import DYNAMIC_CONFIG, SQLITE_PRAGMAS, find_binary
from mnemo.store import embedded, migrate
from mnemo.store.db import libpq_url, with_database
from tests.chaos.worker_proc import COUNTER_ENV, SLEEP_ENV, STANDBY_ENV, STANDBY_MARKER
from worker.main import READY_MARKER

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str, *, interval: float = 0.02) -> None:
    """Poll `check()` until it is true; a bounded wait that fails with a message saying what hung."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)


def gone(pid: int) -> bool:
    """No such process, or one that already exited (a zombie we are about to reap counts too)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def hard_kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and every process of its session, then reap it."""
    if proc.returncode is None:  # not reaped yet, so its PID (= its group id) cannot have been reused
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=STOP_TIMEOUT_S)


def stop_gently(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        hard_kill(proc)


def spawn(cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        # A session of its own: killing its group takes any helper it forked with it.
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO_ROOT,
            start_new_session=True,
            close_fds=True,
        )


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class TemporalDevServer:
    """`temporal server start-dev` on a fixed port with a SQLite file, so a restart keeps every workflow."""

    directory: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)
    starts: int = 0

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "temporal.log"

    def command(self) -> list[str]:
        cmd = [
            str(find_binary()),
            "server",
            "start-dev",
            "--db-filename",
            str(self.directory / "temporal.db"),
            "--ip",
            HOST,
            "--port",
            str(self.port),
            "--headless",
            "--log-level",
            "warn",
            *dev_server_flags(),
        ]
        for pragma in SQLITE_PRAGMAS:
            cmd += ["--sqlite-pragma", pragma]
        for value in DYNAMIC_CONFIG:
            cmd += ["--dynamic-config-value", value]
        return cmd

    def start(self, timeout: float = 30.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("the chaos Temporal server is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = spawn(self.command(), self.log_path)
        self.pids.append(self.proc.pid)
        self.starts += 1
        proc = self.proc

        def listening() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"temporal exited with {proc.returncode}:\n{log_tail(self.log_path)}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.2):
                return True
            return False

        wait_for(listening, timeout, f"Temporal dev server on {self.address}", interval=0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, so only what SQLite already committed survives."""
        if self.proc is not None:
            hard_kill(self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_gently(self.proc)


@dataclass
class ChaosPostgres:
    """An embedded Postgres (pgserver) on a data directory of the chaos suite's own, so stopping it
    never disturbs the session's shared server."""

    data_dir: Path
    admin_url: str = ""
    postmaster_pids: list[int] = field(default_factory=list)

    def start(self) -> str:
        self.admin_url = libpq_url(embedded.start(self.data_dir))
        pid = embedded.pid(self.data_dir)
        if pid is not None and pid not in self.postmaster_pids:
            self.postmaster_pids.append(pid)
        return self.admin_url

    def stop(self) -> None:
        # A fast shutdown: every open connection (the worker's pool, the waiters) is cut.
        embedded.stop(self.data_dir)

    def is_running(self) -> bool:
        return embedded.pid(self.data_dir) is not None

    def create_database(self, name: str) -> str:
        if not self.is_running():
            self.start()  # an earlier test failed while Postgres was stopped
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = with_database(self.admin_url, name)
        migrate.upgrade(url)
        return url


@dataclass
class WorkerProcess:
    """Mnemo workers (`python -m tests.chaos.worker_proc`): at most one polling at a time, plus warm
    standbys that were started ahead and begin polling on SIGUSR1 (see worker_proc)."""

    directory: Path
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    standby: list[subprocess.Popen[bytes]] = field(default_factory=list)
    current: subprocess.Popen[bytes] | None = None

    def log_path(self, proc: subprocess.Popen[bytes]) -> Path:
        return self.directory / f"worker-{self.procs.index(proc)}.log"

    def _wait_log(self, proc: subprocess.Popen[bytes], marker: str, timeout: float) -> None:
        log_path = self.log_path(proc)

        def seen() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"worker pid {proc.pid} exited with {proc.returncode}:\n{log_tail(log_path)}"
                )
            return marker.encode() in log_path.read_bytes()

        wait_for(seen, timeout, f"worker pid {proc.pid}: {marker!r}", interval=0.05)

    def prepare(self) -> None:
        """Spawn a standby worker (it imports, connects and builds its Worker while the test goes on)."""
        log_path = self.directory / f"worker-{len(self.procs)}.log"
        proc = spawn(
            [sys.executable, "-m", "tests.chaos.worker_proc"],
            log_path,
            {**os.environ, **self.env, STANDBY_ENV: "1"},
        )
        self.procs.append(proc)
        self.standby.append(proc)

    def start(self, timeout: float = 60.0) -> subprocess.Popen[bytes]:
        """A new worker begins polling: the oldest standby is told to go (one is spawned if none)."""
        if self.current is not None and self.current.poll() is None:
            raise RuntimeError("a chaos worker is already running; kill it first")
        if not self.standby:
            self.prepare()
        proc = self.standby.pop(0)
        self._wait_log(proc, STANDBY_MARKER, timeout)
        proc.send_signal(signal.SIGUSR1)
        self._wait_log(proc, READY_MARKER, timeout)
        self.current = proc
        return proc

    def kill(self) -> subprocess.Popen[bytes]:
        """SIGKILL the polling worker: no graceful shutdown, its in-flight activities just stop."""
        proc = self.current
        if proc is None:
            raise RuntimeError("no chaos worker is running")
        hard_kill(proc)
        self.current = None
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            stop_gently(proc)

    def logs(self) -> str:
        return "\n".join(f"--- worker pid {p.pid} ---\n{log_tail(self.log_path(p))}" for p in self.procs)


def worker_env(
    database_url: str,
    temporal_address: str,
    task_queue: str,
    counter: Path,
    home: Path,
    tool_sleep_s: float,
    fake_llm_url: str,
) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": temporal_address,
        "MNEMO_TASK_QUEUE": task_queue,
        "MNEMO_HOME": str(home),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        # Agents carry the fake's URL in their llm_config; this is for reading the worker's env in a log.
        "MNEMO_CHAOS_FAKE_LLM_URL": fake_llm_url,
        COUNTER_ENV: str(counter),
        SLEEP_ENV: str(tool_sleep_s),
    }
