"""The embedded Postgres (PostgreSQL 16 + pgvector from the `pgserver` wheel) in MNEMO_HOME.

`mnemo up` uses it when DATABASE_URL is not set. It listens on a unix socket only (inside the data
directory), so several data directories never fight over a port. The server outlives the process
that started it (pgserver's `cleanup_mode=None`); `stop` ends it.

pgserver starts the server through `pg_ctl`, which exits once the server is up: the postmaster is
then an orphan, and on machines whose PID 1 does not reap, a stopped postmaster would linger as a
zombie. A long-lived supervisor (or the test session) calls `adopt_orphans()` first so that the
postmaster becomes its child, which `stop` then reaps.

Run as root, pgserver creates a `pgserver` system user, runs the server as that user, and opens
read/execute permission on the parents of the data directory.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import pwd
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from mnemo.config import Settings, get_settings

if TYPE_CHECKING:
    from pgserver.utils import PostmasterInfo

_PR_SET_CHILD_SUBREAPER = 36


def data_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).home / "postgres"


def start(directory: Path) -> str:
    """Start the server on `directory` (initialising it on first use) and return its URI.

    Idempotent: a running server is reused, also one started by another process.
    """
    get_server = _pgserver().get_server

    path = _resolve(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    if _running(path) is None:
        _remove_stale_pid_file(path)
        # pgserver keeps one handle per directory and trusts it; a server stopped since (by
        # `stop`, another process or a crash) needs a fresh handle to be started again.
        _forget_handle(path)
    return get_server(path, cleanup_mode=None).get_uri()


def uri(directory: Path) -> str | None:
    """The URI of the server on `directory` if it is running, else None (never starts it)."""
    info = _running(_resolve(directory))
    return info.get_uri() if info is not None else None


def pid(directory: Path) -> int | None:
    """The postmaster's PID if the server on `directory` is running."""
    info = _running(_resolve(directory))
    return info.pid if info is not None else None


def stop(directory: Path, *, timeout: float = 30.0) -> bool:
    """Stop the server on `directory` and wait until no process of it is left.

    Returns False if it was not running. A fast shutdown: open sessions are disconnected and
    their transactions rolled back; committed data is safe.
    """
    _pgserver()
    from pgserver._commands import POSTGRES_BIN_PATH

    path = _resolve(directory)
    info = _running(path, ready_only=False)  # also one still starting up
    if info is None:
        return False
    wait = str(max(1, int(timeout)))
    command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(path), "-w", "-t", wait, "-m", "fast", "stop"]
    try:
        subprocess.run(command, user=_owner(path), check=True, capture_output=True, timeout=timeout + 5)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        # pg_ctl could not do it (a wedged server): SIGQUIT is Postgres's immediate shutdown.
        _signal(info.pid, signal.SIGQUIT)
    if not _wait_gone(info.pid, timeout):
        _signal(info.pid, signal.SIGKILL)
        if not _wait_gone(info.pid, 5.0):
            raise RuntimeError(f"the embedded Postgres (pid {info.pid}) did not stop")
    _forget_handle(path)
    return True


def adopt_orphans() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux only; see the module doc).

    Returns whether it took effect.
    """
    if sys.platform != "linux":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0


def _pgserver() -> ModuleType:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver then keeps its lock file in
        # /tmp/runtime-<uid>, which is fine.
        warnings.simplefilter("ignore")
        import pgserver
    return pgserver


def _resolve(directory: Path) -> Path:
    return Path(directory).expanduser().resolve()


def _running(path: Path, *, ready_only: bool = True) -> PostmasterInfo | None:
    """postmaster.pid's contents when it names a live (and ready) postgres process."""
    _pgserver()
    from pgserver.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(path)
    except (OSError, ValueError, AssertionError):
        return None  # missing, or half-written by a server that is starting
    if info is None or (ready_only and info.status != "ready") or not _is_postgres(info.pid):
        return None
    return info


def _is_postgres(pid: int) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        # psutil says a zombie "is running"; a recycled PID is not postgres.
        return proc.status() != psutil.STATUS_ZOMBIE and proc.name() in ("postgres", "postmaster")
    except psutil.Error:
        return False


def _forget_handle(path: Path) -> None:
    server = _pgserver().PostgresServer._instances.pop(path, None)
    if server is not None:
        # Its exit hook would look the handle up again (KeyError) and only does bookkeeping.
        atexit.unregister(server._cleanup)
        server.global_process_id_list.get_and_remove(os.getpid())


def _remove_stale_pid_file(path: Path) -> None:
    """Remove a postmaster.pid whose PID is not a live postgres (a killed server, a recycled PID):
    pgserver would trust it and not start the server. One of a server still starting is kept."""
    _pgserver()
    from pgserver.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(path)
    except (OSError, ValueError, AssertionError):
        return
    if info is not None and not _is_postgres(info.pid):
        with contextlib.suppress(FileNotFoundError):
            (path / "postmaster.pid").unlink()


def _owner(path: Path) -> str | None:
    """The user pg_ctl must run as: Postgres refuses root, so as root use the data dir's owner."""
    if os.geteuid() != 0:
        return None
    return pwd.getpwuid(path.stat().st_uid).pw_name


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait until `pid` has exited, reaping it if it is our child."""
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        try:
            reaped, _ = os.waitpid(pid, os.WNOHANG)
            if reaped == pid:
                return True
        except ChildProcessError:
            pass  # not our child: its parent (or PID 1) reaps it
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
