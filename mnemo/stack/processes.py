"""Daemon bookkeeping for the embedded stack: PID files, process identity, ports, spawn and stop.

PID 1 on the machines we target does not reap orphans, so a stopped daemon that is not our child
stays a zombie; "gone" below therefore means "no such process, or a zombie".
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
from pydantic import BaseModel, ValidationError


class StackError(Exception):
    """A problem a person must act on; the message is one line that says what to do."""


class PidRecord(BaseModel):
    """What `up` wrote for one component: enough to find it again and to prove it is still ours."""

    name: str
    pid: int
    # /proc start time of the process: a recycled PID has another one, so it is never mistaken for ours.
    start_ticks: int
    address: str = ""
    log: str = ""
    # Connection strings the component serves (e.g. DATABASE_URL), for later `up`s to hand on.
    env: dict[str, str] = {}


def run_dir(home: Path) -> Path:
    return home / "run"


def log_dir(home: Path) -> Path:
    return home / "logs"


def _pid_path(home: Path, name: str) -> Path:
    return run_dir(home) / f"{name}.pid"


def read_record(home: Path, name: str) -> PidRecord | None:
    try:
        return PidRecord.model_validate_json(_pid_path(home, name).read_text())
    except (OSError, ValidationError):
        return None


def write_record(home: Path, record: PidRecord) -> None:
    path = _pid_path(home, record.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(record.model_dump_json(indent=2))
    tmp.replace(path)


def remove_record(home: Path, name: str) -> None:
    _pid_path(home, name).unlink(missing_ok=True)


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: parse after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of proc(5); fields[0] is field 3


def children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_ours(record: PidRecord) -> bool:
    return start_ticks(record.pid) == record.start_ticks


def live_record(home: Path, name: str) -> PidRecord | None:
    record = read_record(home, name)
    return record if record is not None and is_ours(record) else None


def reap(pid: int) -> None:
    """Collect the exit status if `pid` is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a port with only TIME_WAIT leftovers is free to listen on again.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def tcp_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def log_has(path: Path, offset: int, text: str) -> bool:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            return text.encode() in fh.read()
    except OSError:
        return False


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def wait_until(check: Callable[[], bool], *, timeout: float, alive: Callable[[], bool], failure: str) -> None:
    """Poll `check` until it holds; fail fast with `failure` if the process died first."""
    deadline = time.monotonic() + timeout
    while not check():
        if not alive():
            raise StackError(failure.format(reason="it exited"))
        if time.monotonic() >= deadline:
            raise StackError(failure.format(reason=f"not ready after {timeout:.0f}s"))
        time.sleep(0.1)


def spawn(cmd: Sequence[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a daemon in its own session (no terminal signals, survives our exit), logging to a file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )


def record_for(
    name: str, proc_pid: int, *, address: str, log: Path, env: dict[str, str] | None = None
) -> PidRecord:
    ticks = start_ticks(proc_pid)
    if ticks is None:
        raise StackError(f"{name} exited right after starting; see {log}")
    return PidRecord(name=name, pid=proc_pid, start_ticks=ticks, address=address, log=str(log), env=env or {})


def _signal(pid: int, sig: int, *, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # Our daemons lead their own session; killing the group also takes helpers they forked.
        if group and os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _wait_gone(record: PidRecord, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        reap(record.pid)
        if not is_ours(record):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def stop(record: PidRecord, *, sig: int = signal.SIGTERM, timeout: float = 20.0) -> bool:
    """Stop the process and wait until it is really gone; SIGKILL after `timeout`.

    Returns False if it had to be killed. Does nothing to a PID that is no longer ours.
    """
    if not is_ours(record):
        reap(record.pid)
        return True
    _signal(record.pid, sig, group=False)
    if _wait_gone(record, timeout):
        return True
    # Postgres backends start their own sessions, so the group kill alone would miss them.
    orphans = children(record.pid)
    _signal(record.pid, signal.SIGKILL, group=True)
    for child in orphans:
        _signal(child, signal.SIGKILL, group=False)
    if not _wait_gone(record, 10.0):
        raise StackError(
            f"{record.name} (pid {record.pid}) survived SIGKILL; check it with `ps -p {record.pid}`"
        )
    return False
