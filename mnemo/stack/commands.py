"""`mnemo up / down / status`: the embedded stack's lifecycle, as the CLI sees it."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from types import FrameType
from urllib.parse import urlsplit

from mnemo.config import Settings, get_settings
from mnemo.stack import launch, postgres, temporal_server
from mnemo.stack.launch import LABELS, ORDER, Started
from mnemo.stack.processes import (
    PidRecord,
    StackError,
    http_ok,
    is_ours,
    live_record,
    log_dir,
    read_record,
    remove_record,
    tcp_answers,
)
from mnemo.store import embedded

EXIT_NOT_RUNNING = 3  # as LSB `status` does: something the stack needs is stopped


def _say(text: str = "") -> None:
    print(text, flush=True)


def _line(name: str, state: str, pid: int | None = None, where: str = "") -> None:
    label = LABELS.get(name, name)
    pid_text = f"pid {pid}" if pid else "-"
    _say(f"  {label:<20} {state:<16} {pid_text:<11} {where}".rstrip())


def _external_db(url: str) -> str:
    """Where an external DATABASE_URL points, without its credentials."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.hostname or 'local socket'}{port}{parts.path} (DATABASE_URL)"


def _needed(settings: Settings) -> list[str]:
    """The components this stack runs itself: external Temporal / Postgres are not ours."""
    skip = set()
    if settings.temporal_address:
        skip.add("temporal")
    if settings.database_url:
        skip.add("postgres")
    return [name for name in ORDER if name not in skip]


class _Up:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.home
        self.started: list[Started] = []
        self.records: dict[str, PidRecord] = {}

    def run(self) -> None:
        settings = self.settings
        self.home.mkdir(parents=True, exist_ok=True)
        running = {name: live_record(self.home, name) for name in ORDER}
        to_start = {name for name in _needed(settings) if running[name] is None}
        # Everything that can be checked up front is, so a refusal leaves nothing half-started.
        launch.check_ports(settings, to_start)
        if "temporal" in to_start:
            temporal_server.find_binary()
        _say(f"Starting Mnemo in {self.home}")

        # Temporal boots while Postgres starts; later the worker and the API import side by side.
        temporal = postgres_step = None
        if not settings.temporal_address:
            temporal = self._begin("temporal", running, lambda: launch.spawn_temporal(settings))
        if not settings.database_url:
            postgres_step = self._begin("postgres", running, lambda: launch.begin_postgres(settings))

        if temporal is None:
            temporal_address = settings.temporal_address or ""
            _line("temporal", "external", where=f"{temporal_address} (TEMPORAL_ADDRESS)")
        else:
            temporal_address = self._finish("temporal", temporal).address
        if postgres_step is None:
            database_url = settings.database_url or ""
            _line("postgres", "external", where=_external_db(database_url))
        else:
            database_url = self._finish("postgres", postgres_step).env.get("DATABASE_URL", "")
            if not database_url:
                raise StackError(
                    "the running Postgres's PID file lacks its URL; run `mnemo down`, then `mnemo up`"
                )

        launch.migrate(database_url)
        _say(f"  {'migrations':<20} {'applied':<16} {'-':<11} up to head")

        env = launch.child_env(settings, temporal_address, database_url)
        worker = self._begin("worker", running, lambda: launch.spawn_worker(settings, env))
        api = self._begin("api", running, lambda: launch.spawn_api(settings, env))
        self._finish("worker", worker)
        self._finish("api", api)

    def _begin(
        self, name: str, running: dict[str, PidRecord | None], spawn: Callable[[], launch.Pending]
    ) -> PidRecord | launch.Pending:
        """The running component's record, or the one just spawned (not yet ready)."""
        existing = running[name]
        if existing is not None:
            return existing
        pending = spawn()
        self.started.append(pending.started)
        return pending

    def _finish(self, name: str, step: PidRecord | launch.Pending) -> PidRecord:
        if isinstance(step, PidRecord):
            _line(name, "already running", step.pid, step.address)
            record = step
        else:
            record = launch.wait_ready(step, self.settings).record
            _line(name, "started", record.pid, record.address)
        self.records[name] = record
        return record

    def rollback(self) -> None:
        if self.started:
            _say("Stopping what this `mnemo up` started...")
            launch.stop_started(self.started, self.settings)
            self.started.clear()

    def summary(self, detach: bool) -> None:
        settings = self.settings
        _say()
        api = self.records["api"].address
        _say(f"  API:          {api}  (health: {api}/v1/health/)")
        if "temporal" in self.records:
            ui = self.records["temporal"].env.get(launch.UI_URL, temporal_server.ui_url(settings))
            _say(f"  Temporal UI:  {ui}")
        _say(f"  Logs:         {log_dir(self.home)}")
        _say("  Stop with:    mnemo down" if detach else "  Stop with:    Ctrl-C (or `mnemo down` elsewhere)")

    def foreground(self) -> int:
        """Supervise what we started until Ctrl-C/SIGTERM or until one of them exits, then stop them."""
        if not self.started:
            _say("Everything was already running; nothing for this process to supervise.")
            return 0
        stop_requested: list[int] = []

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            stop_requested.append(signum)

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        code = 0
        while not stop_requested:
            gone = next((item for item in self.started if not launch.still_running(item)), None)
            if gone is not None:
                name = gone.record.name
                if read_record(self.home, name) is None:
                    _say(f"{LABELS[name]} was stopped by `mnemo down`.")
                else:
                    code = 1
                    _say(f"mnemo: the {LABELS[name]} exited unexpectedly; see {gone.record.log}")
                break
            time.sleep(0.5)
        _say()
        _say("Stopping...")
        self.rollback()
        _say("Stopped.")
        return code


def up(detach: bool) -> int:
    runner = _Up(get_settings())
    if not detach:
        # pg_ctl leaves the postmaster an orphan; as its reaper we collect it when we stop it.
        embedded.adopt_orphans()
    try:
        runner.run()
    except Exception as exc:
        _say()
        runner.rollback()
        message = str(exc) if isinstance(exc, StackError) else f"unexpected error: {exc!r}"
        print(f"mnemo: {message}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        _say()
        runner.rollback()
        return 130
    runner.summary(detach)
    if detach:
        return 0
    return runner.foreground()


def down() -> int:
    settings = get_settings()
    home = settings.home
    found = False
    for name in (*launch.EXTRAS, *reversed(ORDER)):
        record = read_record(home, name)
        live = record if record is not None and is_ours(record) else None
        if live is None and name == "postgres":
            # A postmaster on our data directory without a valid PID file is still ours to stop.
            live = postgres.running(settings)
        if live is None:
            if record is not None:
                found = True
                remove_record(home, name)
                _line(name, "was not running", record.pid, "(stale PID file removed)")
            continue
        found = True
        try:
            graceful = launch.stop_component(live, settings)
        except StackError as exc:
            print(f"mnemo: {exc}", file=sys.stderr, flush=True)
            return 1
        _line(name, "stopped" if graceful else "killed", live.pid, live.address)
    if not found:
        _say(f"Nothing to stop: no Mnemo stack is running from {home}.")
    return 0


def _health(name: str, record: PidRecord) -> str:
    if name == "api":
        return "running" if http_ok(f"{record.address}/v1/health/") else "not answering"
    if name == "temporal":
        host, _, port = record.address.rpartition(":")
        return "running" if tcp_answers(host, int(port)) else "not answering"
    return "running"


def status() -> int:
    settings = get_settings()
    home = settings.home
    _say(f"Mnemo stack in {home}")
    all_up = True
    for name in ORDER:
        record = live_record(home, name)
        if record is None and name == "postgres" and not settings.database_url:
            record = postgres.running(settings)  # also one whose PID file was lost
        if record is not None:
            state = _health(name, record)
            where = record.address
            if name == "temporal":
                where += f"  (UI {record.env.get(launch.UI_URL, temporal_server.ui_url(settings))})"
            _line(name, state, record.pid, where)
            all_up = all_up and state == "running"
        elif name == "temporal" and settings.temporal_address:
            _line(name, "external", where=f"{settings.temporal_address} (TEMPORAL_ADDRESS)")
        elif name == "postgres" and settings.database_url:
            _line(name, "external", where=_external_db(settings.database_url))
        else:
            _line(name, "stopped")
            all_up = False
    for name in launch.EXTRAS:  # optional: shown only while running
        record = live_record(home, name)
        if record is not None:
            _line(name, "running", record.pid, record.address)
    return 0 if all_up else EXIT_NOT_RUNNING
