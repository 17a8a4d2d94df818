"""The Mnemo API in processes of its own (`python -m mnemo.cli api`, as `mnemo up` runs it), for a chaos
test to SIGKILL and restart on the same port, and a reader for the SSE streams it sends.

    api = ApiProcess(tmp_path / "api", api_env(database_url, temporal_address, task_queue, home))
    await asyncio.to_thread(api.start)   # blocks until /v1/health/ answers: keep the event loop free
    killed = api.kill()                  # SIGKILL, reaped
    await asyncio.to_thread(api.start)   # a new process on the same port
    api.stop_all()                       # at teardown; then `api.leftovers()` must be empty

Every process started here is reaped here (`Popen.wait`), and kept in `procs` so a test can prove that.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.chaos.processes import HOST, free_port, gone, hard_kill, log_tail, spawn, stop_gently, wait_for

# Importing the API (it pulls in litellm) takes several seconds on the project's 2-core machines.
READY_TIMEOUT_S = 90.0


def api_env(database_url: str, temporal_address: str, task_queue: str, home: Path) -> dict[str, str]:
    """The environment `mnemo up` gives its API process, pointed at the test's own components."""
    env = {k: v for k, v in os.environ.items() if k != "MNEMO_API_KEY"}
    env.update(
        DATABASE_URL=database_url,
        TEMPORAL_ADDRESS=temporal_address,
        MNEMO_TASK_QUEUE=task_queue,
        MNEMO_HOME=str(home),
        PYTHONUNBUFFERED="1",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    return env


@dataclass
class ApiProcess:
    """One API process at a time on a fixed port; each `start` after a `kill` is a new process."""

    directory: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    current: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_path(self, proc: subprocess.Popen[bytes]) -> Path:
        return self.directory / f"api-{self.procs.index(proc)}.log"

    def start(self, timeout: float = READY_TIMEOUT_S) -> subprocess.Popen[bytes]:
        """Spawn an API process and wait until it answers its health check. Blocking."""
        if self.current is not None and self.current.poll() is None:
            raise RuntimeError("an API process is already running; kill it first")
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory / f"api-{len(self.procs)}.log"
        cmd = [sys.executable, "-m", "mnemo.cli", "api", "--host", HOST, "--port", str(self.port)]
        proc = spawn(cmd, log, self.env)
        self.procs.append(proc)

        def healthy() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"API pid {proc.pid} exited with {proc.returncode}:\n{log_tail(log)}")
            try:
                return httpx.get(f"{self.base_url}/v1/health/", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_for(healthy, timeout, f"API pid {proc.pid} on {self.base_url}", interval=0.1)
        except BaseException:
            hard_kill(proc)
            raise
        self.current = proc
        return proc

    def kill(self) -> subprocess.Popen[bytes]:
        """SIGKILL the running API process: no shutdown hook runs, its open streams just break."""
        proc = self.current
        if proc is None:
            raise RuntimeError("no API process is running")
        hard_kill(proc)
        self.current = None
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            stop_gently(proc)
        self.current = None

    def leftovers(self) -> list[str]:
        """Processes started here that still exist, or that exited without being reaped."""
        found = [f"API pid {p.pid} still running" for p in self.procs if not gone(p.pid)]
        ours = {p.pid for p in self.procs}
        for child in psutil.Process().children():
            try:
                if child.pid in ours and child.status() == psutil.STATUS_ZOMBIE:
                    found.append(f"API pid {child.pid} unreaped")
            except psutil.Error:
                continue
        return found

    def logs(self) -> str:
        return "\n".join(f"--- API pid {p.pid} ---\n{log_tail(self.log_path(p))}" for p in self.procs)


@dataclass(frozen=True)
class SseEvent:
    data: str
    event: str | None = None

    @property
    def done(self) -> bool:
        return self.data == "[DONE]"

    def json(self) -> dict[str, Any]:
        value = json.loads(self.data)
        assert isinstance(value, dict), self.data
        return value


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """The events of an SSE response as they arrive (the raw wire format, so `[DONE]` is seen too).

    An event counts once its closing blank line has arrived: one cut off by a dropped connection was
    never received, and the connection's error is raised instead.
    """
    event: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield SseEvent("\n".join(data), event)
            event, data = None, []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            event = line[6:].strip()
