"""The embedded Postgres with pgvector, as a stack component (mnemo/store/embedded.py runs it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mnemo.config import Settings
from mnemo.stack.processes import PidRecord, StackError, record_for, start_ticks
from mnemo.store import embedded

NAME = "postgres"


def data_dir(settings: Settings) -> Path:
    # The store's choice, so `mnemo db upgrade` and the app find the same server without DATABASE_URL.
    return embedded.data_dir(settings)


def _record(settings: Settings, pid: int, uri: str) -> PidRecord:
    pgdata = data_dir(settings)
    return record_for(NAME, pid, address=str(pgdata), log=pgdata / "log", env={"DATABASE_URL": uri})


def start(settings: Settings) -> PidRecord:
    """Start the server on our data directory (or find it running) and describe it."""
    pgdata = data_dir(settings)
    try:
        uri = embedded.start(pgdata)
    except (subprocess.SubprocessError, OSError, AssertionError, RuntimeError) as exc:
        raise StackError(f"the embedded Postgres did not start ({exc}); see {pgdata / 'log'}") from exc
    pid = embedded.pid(pgdata)
    if pid is None:
        raise StackError(f"the embedded Postgres did not start; see {pgdata / 'log'}")
    return _record(settings, pid, uri)


def running(settings: Settings) -> PidRecord | None:
    """The server on our data directory, even without a PID file (an interrupted `up`)."""
    pgdata = data_dir(settings)
    pid = embedded.pid(pgdata)
    uri = embedded.uri(pgdata)
    if pid is None or uri is None or start_ticks(pid) is None:
        return None
    return _record(settings, pid, uri)


def stop(settings: Settings) -> bool:
    """Fast shutdown, waiting until the server is gone. False if it was not running."""
    try:
        return embedded.stop(data_dir(settings))
    except (subprocess.SubprocessError, RuntimeError) as exc:
        raise StackError(f"could not stop the embedded Postgres: {exc}") from exc
