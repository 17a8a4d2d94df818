"""Starting each component of the embedded stack and waiting until it is healthy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mnemo.config import Settings
from mnemo.stack import WORKER_READY_MARKER, postgres, temporal_server
from mnemo.stack.processes import (
    PidRecord,
    StackError,
    http_ok,
    is_ours,
    log_dir,
    log_has,
    log_size,
    port_in_use,
    record_for,
    remove_record,
    spawn,
    stop,
    tcp_answers,
    wait_until,
    write_record,
)

# Start order; `down` and rollbacks go in reverse.
ORDER: tuple[str, ...] = ("temporal", "postgres", "worker", "api")
# Started on request (the demo's fake LLM); `down` stops them first.
EXTRAS: tuple[str, ...] = ("fake-llm",)
LABELS = {
    "temporal": "Temporal dev server",
    "postgres": "Postgres (embedded)",
    "worker": "worker",
    "api": "API",
    "fake-llm": "fake LLM",
}
READY_TIMEOUT_S = 60.0
# Key of the Temporal UI's URL in the temporal PID record (the UI port may differ from today's env).
UI_URL = "TEMPORAL_UI_URL"


@dataclass
class Started:
    """A component this `mnemo up` started; `proc` is None when it is not our child (pg_ctl forks it)."""

    record: PidRecord
    proc: subprocess.Popen[bytes] | None = None


def local_host(host: str) -> str:
    """Where to reach a server bound to `host` from this machine."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def api_url(settings: Settings) -> str:
    return f"http://{local_host(settings.api_host)}:{settings.api_port}"


def check_ports(settings: Settings, to_start: set[str]) -> None:
    """Fail before starting anything if a port we need is taken by a process that is not ours."""
    wanted: list[tuple[str, int, str]] = []
    if "temporal" in to_start:
        wanted += [
            (
                temporal_server.HOST,
                settings.temporal_port,
                "MNEMO_TEMPORAL_PORT (or TEMPORAL_ADDRESS to use that server)",
            ),
            (temporal_server.HOST, settings.temporal_ui_port, "MNEMO_TEMPORAL_UI_PORT"),
        ]
    if "api" in to_start:
        wanted.append((settings.api_host, settings.api_port, "MNEMO_API_PORT"))
    for host, port, variable in wanted:
        if port_in_use(host, port):
            raise StackError(f"port {port} is in use by another process; stop it or set {variable}")


def _log_path(settings: Settings, name: str) -> Path:
    return log_dir(settings.home) / f"{name}.log"


@dataclass
class Pending:
    """A spawned component not yet known to be ready."""

    started: Started
    ready: Callable[[], bool]
    label: str


def _spawn(
    name: str,
    cmd: list[str],
    settings: Settings,
    env: dict[str, str],
    *,
    address: str,
    ready: Callable[[], bool] | str,
    record_env: dict[str, str] | None = None,
) -> Pending:
    log = _log_path(settings, name)
    offset = log_size(log)
    proc = spawn(cmd, log, env)
    started = Started(record_for(name, proc.pid, address=address, log=log, env=record_env), proc)
    # Written before the wait so that `down` can stop a component whose `up` was interrupted.
    write_record(settings.home, started.record)
    if isinstance(ready, str):
        marker = ready
        return Pending(started, lambda: log_has(log, offset, marker), LABELS[name])
    return Pending(started, ready, LABELS[name])


def wait_ready(pending: Pending, settings: Settings) -> Started:
    """Wait until the component is healthy; on failure stop it and raise."""
    started = pending.started
    proc = started.proc
    try:
        wait_until(
            pending.ready,
            timeout=READY_TIMEOUT_S,
            alive=lambda: proc is None or proc.poll() is None,
            failure=f"{pending.label} did not become ready ({{reason}}); see {started.record.log}",
        )
    except BaseException:
        stop_started([started], settings)
        raise
    return started


def spawn_temporal(settings: Settings) -> Pending:
    binary = temporal_server.find_binary()
    host, port, ui_port = temporal_server.HOST, settings.temporal_port, settings.temporal_ui_port
    return _spawn(
        "temporal",
        temporal_server.command(binary, settings),
        settings,
        dict(os.environ),
        address=temporal_server.address(settings),
        ready=lambda: tcp_answers(host, port) and http_ok(f"http://{host}:{ui_port}/"),
        record_env={UI_URL: temporal_server.ui_url(settings)},
    )


def start_temporal(settings: Settings) -> Started:
    return wait_ready(spawn_temporal(settings), settings)


def start_postgres(settings: Settings) -> Started:
    record = postgres.start(settings)
    write_record(settings.home, record)
    return Started(record)


def begin_postgres(settings: Settings) -> Pending:
    """Postgres starts synchronously (pg_ctl waits for it); this fits it into the spawn/wait flow."""
    return Pending(start_postgres(settings), lambda: True, LABELS["postgres"])


def migrate(database_url: str) -> None:
    try:
        from mnemo.store.migrate import upgrade

        upgrade(database_url)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StackError(
            f"database migrations failed: {reason}; fix that, then run `mnemo up` again"
        ) from exc


def child_env(settings: Settings, temporal_address: str, database_url: str) -> dict[str, str]:
    """The worker and API connect to exactly what this stack resolved, whatever the caller's env says."""
    env = dict(os.environ)
    env.update(
        MNEMO_HOME=str(settings.home),
        TEMPORAL_ADDRESS=temporal_address,
        DATABASE_URL=database_url,
        TEMPORAL_NAMESPACE=settings.temporal_namespace,
        MNEMO_TASK_QUEUE=settings.task_queue,
        PYTHONUNBUFFERED="1",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    return env


def _mnemo(*args: str) -> list[str]:
    # The same interpreter as this `mnemo`, so children see the same installed code.
    return [sys.executable, "-m", "mnemo.cli", *args]


def spawn_worker(settings: Settings, env: dict[str, str]) -> Pending:
    return _spawn(
        "worker",
        _mnemo("worker"),
        settings,
        env,
        address=f"task queue {settings.task_queue}",
        ready=WORKER_READY_MARKER,
    )


def start_worker(settings: Settings, env: dict[str, str]) -> Started:
    return wait_ready(spawn_worker(settings, env), settings)


def spawn_api(settings: Settings, env: dict[str, str]) -> Pending:
    url = api_url(settings)
    return _spawn(
        "api",
        _mnemo("api", "--host", settings.api_host, "--port", str(settings.api_port)),
        settings,
        env,
        address=url,
        ready=lambda: http_ok(f"{url}/v1/health/"),
    )


def start_api(settings: Settings, env: dict[str, str]) -> Started:
    return wait_ready(spawn_api(settings, env), settings)


def start_fake_llm(settings: Settings) -> Started:
    """The scripted fake LLM as a stack component, so `mnemo down` stops it with the rest."""
    port = settings.fake_llm_port
    if port_in_use("127.0.0.1", port):
        raise StackError(f"port {port} is in use by another process; stop it to run the fake LLM there")
    url = f"http://127.0.0.1:{port}/v1"
    pending = _spawn(
        "fake-llm",
        _mnemo("fake-llm", "--port", str(port)),
        settings,
        dict(os.environ),
        address=url,
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/v1/models"),
    )
    return wait_ready(pending, settings)


def stop_component(record: PidRecord, settings: Settings) -> bool:
    """Stop one recorded component (if it is still ours) and forget it. False if it had to be killed."""
    if record.name == postgres.NAME:
        postgres.stop(settings)
        graceful = True
    else:
        graceful = stop(record, sig=signal.SIGTERM)
    remove_record(settings.home, record.name)
    return graceful


def stop_started(started: list[Started], settings: Settings) -> None:
    for item in reversed(started):
        stop_component(item.record, settings)
        if item.proc is not None:
            item.proc.poll()


def still_running(item: Started) -> bool:
    if item.proc is not None and item.proc.poll() is not None:
        return False
    return is_ours(item.record)
