"""Escape attempts as data, so every sandbox backend is held to the same containment checks.

Each attempt is a real tool (source + args + limits) that tries to break out, and a predicate on the
`SandboxResult` that says whether it was contained. Some also come with a check on the host (a file
that must not exist, a listener that must not have been reached). A backend's test builds an
`EscapeContext` (a live TCP listener on 127.0.0.1, a canary env var set in the server process, host
paths the tool must not be able to create) and runs `run_escape_suite`.

`needs_namespaces` marks what only namespaces can contain (network, DNS, nested user namespaces):
a plain subprocess with rlimits is not expected to pass those, and says so loudly when it is used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mnemo.sandbox.base import SandboxLimits, SandboxRequest, SandboxResult, SandboxRunner


@dataclass(frozen=True)
class EscapeContext:
    listener_port: int  # a TCP listener on 127.0.0.1 in the server's network namespace
    listener_hits: Callable[[], int]  # how many connections it has accepted so far
    canary_name: str  # set in the server's os.environ; must never be visible to a tool
    canary_value: str
    forbidden_paths: tuple[str, ...]  # host paths outside /tmp the tool tries to create
    server_pid: int = field(default_factory=os.getpid)


@dataclass(frozen=True)
class EscapeAttempt:
    name: str
    expected: str  # what containment looks like, for people reading a failure
    source: str
    function_name: str
    contained: Callable[[SandboxResult], bool]
    args: dict[str, Any] = field(default_factory=dict)
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    needs_namespaces: bool = False
    host_contained: Callable[[], bool] | None = None

    def request(self, env: dict[str, str] | None = None) -> SandboxRequest:
        return SandboxRequest(
            source_code=self.source,
            function_name=self.function_name,
            args=self.args,
            env=env or {},
            limits=self.limits,
        )


@dataclass(frozen=True)
class EscapeOutcome:
    attempt: EscapeAttempt
    result: SandboxResult
    contained: bool

    def describe(self) -> str:
        r = self.result
        state = "contained" if self.contained else "NOT CONTAINED"
        return (
            f"{self.attempt.name}: {state} (expected: {self.attempt.expected}); ok={r.ok} "
            f"error={r.error!r} value={str(r.value)[:300]!r} stdout={r.stdout[:200]!r} stderr={r.stderr[-300:]!r}"
        )


def _failed(*prefixes: str) -> Callable[[SandboxResult], bool]:
    """Contained when the tool failed, and (if given) with one of these error types."""

    def check(result: SandboxResult) -> bool:
        if result.ok or not result.error:
            return False
        return not prefixes or result.error.startswith(prefixes)

    return check


def _all_refused(result: SandboxResult) -> bool:
    return result.ok and isinstance(result.value, dict) and all(v != "written" for v in result.value.values())


def _output_capped(result: SandboxResult) -> bool:
    return not result.ok and len(result.stdout.encode()) + len(result.stderr.encode()) <= 2_000_000


def _fork_stopped(result: SandboxResult) -> bool:
    v = result.value
    return result.ok and isinstance(v, dict) and bool(v.get("blocked")) and v.get("forked", 10**9) < 500


def _stopped(result: SandboxResult) -> bool:
    error = result.error or ""
    return not result.ok and ("timed out" in error or "CPU" in error)


def escape_attempts(ctx: EscapeContext) -> list[EscapeAttempt]:
    def no_canary(result: SandboxResult) -> bool:
        return ctx.canary_value not in json.dumps(result.model_dump(mode="json"), default=str)

    def no_files() -> bool:
        return not any(os.path.lexists(p) for p in ctx.forbidden_paths)

    hits_before = ctx.listener_hits()
    return [
        EscapeAttempt(
            name="tcp_to_host_loopback",
            expected="the connection fails: the sandbox has its own empty network namespace",
            source=_TCP,
            function_name="connect",
            args={"port": ctx.listener_port},
            contained=_failed(),
            needs_namespaces=True,
            host_contained=lambda: ctx.listener_hits() == hits_before,
        ),
        EscapeAttempt(
            name="dns_lookup",
            expected="name resolution fails (no resolver, no network)",
            source=_DNS,
            function_name="resolve",
            args={"host": "example.com"},
            contained=_failed(),
            needs_namespaces=True,
        ),
        EscapeAttempt(
            name="read_etc_shadow",
            expected="/etc/shadow is absent or unreadable",
            source=_READ,
            function_name="read",
            args={"path": "/etc/shadow"},
            contained=_failed("FileNotFoundError", "PermissionError"),
        ),
        EscapeAttempt(
            name="server_environment",
            expected="the server's env (a canary) is visible nowhere: not in os.environ nor any /proc/*/environ",
            source=_ENV,
            function_name="environment",
            args={"server_pid": ctx.server_pid},
            contained=no_canary,
        ),
        EscapeAttempt(
            name="write_outside_tmp",
            expected="every write outside /tmp is refused and no file appears on the host",
            source=_WRITE,
            function_name="write",
            args={"paths": list(ctx.forbidden_paths)},
            contained=_all_refused,
            host_contained=no_files,
        ),
        EscapeAttempt(
            name="signal_server",
            expected="the server's pid cannot be signalled (not visible, or not permitted)",
            source=_SIGNAL,
            function_name="probe",
            args={"pid": ctx.server_pid},
            contained=_failed("ProcessLookupError", "PermissionError"),
        ),
        EscapeAttempt(
            name="nested_user_namespace",
            expected="unshare(CLONE_NEWUSER) is refused",
            source=_USERNS,
            function_name="unshare_user",
            contained=_failed("OSError", "PermissionError"),
            needs_namespaces=True,
        ),
        EscapeAttempt(
            name="fork_bomb",
            expected="fork fails once max_processes is reached",
            source=_FORK,
            function_name="fork_bomb",
            args={"attempts": 500},
            limits=SandboxLimits(max_processes=16, timeout_s=30),
            contained=_fork_stopped,
        ),
        EscapeAttempt(
            name="allocate_4gb",
            expected="MemoryError at the address-space limit",
            source=_ALLOC,
            function_name="allocate",
            args={"gib": 4},
            limits=SandboxLimits(memory_mb=256),
            contained=_failed("MemoryError"),
        ),
        EscapeAttempt(
            name="infinite_loop",
            expected="stopped by the wall-clock timeout",
            source=_SPIN,
            function_name="spin",
            limits=SandboxLimits(timeout_s=2, cpu_s=60),
            contained=_stopped,
        ),
        EscapeAttempt(
            name="cpu_burn",
            expected="stopped by the CPU-time limit",
            source=_SPIN,
            function_name="spin",
            limits=SandboxLimits(timeout_s=60, cpu_s=1),
            contained=_stopped,
        ),
        EscapeAttempt(
            name="print_50mb",
            expected="stopped at max_output_bytes, output truncated",
            source=_PRINT,
            function_name="flood",
            args={"mb": 50},
            limits=SandboxLimits(max_output_bytes=1_000_000),
            contained=_output_capped,
        ),
        EscapeAttempt(
            name="fill_disk",
            expected="a write fails at the file-size limit or the /tmp size cap",
            source=_FILL,
            function_name="fill",
            args={"mb": 2048},
            limits=SandboxLimits(memory_mb=128),
            contained=_failed("OSError"),
        ),
        EscapeAttempt(
            name="open_files",
            expected="EMFILE at the open-files limit",
            source=_FDS,
            function_name="open_many",
            args={"n": 100_000},
            contained=_failed("OSError"),
        ),
    ]


async def run_escape_suite(
    runner: SandboxRunner, ctx: EscapeContext, *, namespaces: bool = True, names: set[str] | None = None
) -> list[EscapeOutcome]:
    """Run the attempts one by one (all, or `names`); skip `needs_namespaces` ones if `namespaces` is off."""
    outcomes = []
    for attempt in escape_attempts(ctx):
        if (names is not None and attempt.name not in names) or (attempt.needs_namespaces and not namespaces):
            continue
        result = await runner.run(attempt.request())
        contained = _safe(attempt.contained, result) and (
            attempt.host_contained is None or bool(attempt.host_contained())
        )
        outcomes.append(EscapeOutcome(attempt=attempt, result=result, contained=contained))
    return outcomes


def _safe(check: Callable[[SandboxResult], bool], result: SandboxResult) -> bool:
    try:
        return bool(check(result))
    except Exception:
        return False


_TCP = """
def connect(port: int) -> str:
    import socket
    conn = socket.create_connection(("127.0.0.1", port), timeout=3)
    conn.sendall(b"escaped")
    conn.close()
    return "connected"
"""

_DNS = """
def resolve(host: str) -> list:
    import socket
    return [a[4][0] for a in socket.getaddrinfo(host, 443)]
"""

_READ = """
def read(path: str) -> str:
    with open(path) as f:
        return f.read()
"""

_ENV = """
def environment(server_pid: int) -> dict:
    import os
    seen = {"environ": dict(os.environ)}
    for pid in ("1", "self", str(os.getppid()), str(server_pid)):
        try:
            with open("/proc/%s/environ" % pid, "rb") as f:
                seen[pid] = f.read().decode("utf-8", "replace")
        except OSError as exc:
            seen[pid] = "%s: %s" % (type(exc).__name__, exc)
    return seen
"""

_WRITE = """
def write(paths: list) -> dict:
    out = {}
    for path in paths:
        try:
            with open(path, "w") as f:
                f.write("escaped")
            out[path] = "written"
        except OSError as exc:
            out[path] = "%s: %s" % (type(exc).__name__, exc)
    return out
"""

_SIGNAL = """
def probe(pid: int) -> str:
    import os
    os.kill(pid, 0)
    return "signalled"
"""

_USERNS = """
def unshare_user() -> str:
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return "unshared"
"""

_FORK = """
def fork_bomb(attempts: int) -> dict:
    import os, time
    forked, blocked = 0, None
    for _ in range(attempts):
        try:
            pid = os.fork()
        except OSError as exc:
            blocked = "%s: %s" % (type(exc).__name__, exc)
            break
        if pid == 0:
            try:
                os.fork()  # every child multiplies too
            except OSError:
                pass
            time.sleep(60)
            os._exit(0)
        forked += 1
    return {"forked": forked, "blocked": blocked}
"""

_ALLOC = """
def allocate(gib: int) -> int:
    block = bytearray(gib * 1024 ** 3)
    return len(block)
"""

_SPIN = """
def spin() -> int:
    n = 0
    while True:
        n += 1
"""

_PRINT = """
def flood(mb: int) -> str:
    import sys
    chunk = "x" * (1024 * 1024)
    for _ in range(mb):
        sys.stdout.write(chunk)
    return "done"
"""

_FILL = """
def fill(mb: int) -> int:
    import os, tempfile
    chunk = b"\\0" * (1024 * 1024)
    # The tool's own temp dir: /tmp in a namespace sandbox, a per-run directory otherwise.
    with open(os.path.join(tempfile.gettempdir(), "fill.bin"), "wb") as f:
        for i in range(mb):
            f.write(chunk)
            f.flush()
    return mb
"""

_FDS = """
def open_many(n: int) -> int:
    files = [open("/dev/null") for _ in range(n)]
    return len(files)
"""
