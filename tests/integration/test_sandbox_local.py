"""The local sandbox for real: bubblewrap and the plain fallback, the shared script and the escape suite.

Every test runs real tool code in a real interpreter. The bubblewrap variants are skipped only when
`bwrap` is not installed; the plain fallback's escape checks need root (it then runs each tool as a
throwaway uid, which is what contains file access, signals and the fork limit).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnemo.sandbox.base import SandboxLimits, SandboxRequest, SandboxRunner, SandboxUnavailable
from mnemo.sandbox.escape_suite import EscapeContext, escape_attempts, run_escape_suite
from mnemo.sandbox.local import _UID_BASE, _UID_SPAN, LocalSandbox
from mnemo.sandbox.script import CORRUPTED_OUTPUT, build_script, new_marker, parse_output

BWRAP = shutil.which("bwrap")
ROOT = os.geteuid() == 0
REPO = Path(__file__).resolve().parents[2]
needs_bwrap = pytest.mark.skipif(
    BWRAP is None, reason="bubblewrap is not installed (apt-get install bubblewrap)"
)
needs_root = pytest.mark.skipif(
    not ROOT, reason="the plain fallback contains files/signals/forks only as root"
)


@pytest.fixture(scope="module")
def bwrap_sandbox() -> LocalSandbox:
    return LocalSandbox(isolation="bwrap")


@pytest.fixture(scope="module")
def plain_sandbox() -> LocalSandbox:
    return LocalSandbox(isolation="none")


@pytest.fixture(params=["bwrap", "none"])
def sandbox(request: pytest.FixtureRequest) -> LocalSandbox:
    if request.param == "bwrap" and BWRAP is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    return request.getfixturevalue("bwrap_sandbox" if request.param == "bwrap" else "plain_sandbox")


def req(source: str, function: str, args: dict | None = None, **kw: object) -> SandboxRequest:
    return SandboxRequest(source_code=source, function_name=function, args=args or {}, **kw)  # type: ignore[arg-type]


# --- the shared script, parsed without a sandbox ---------------------------------------------------


def test_frame_is_found_among_the_tools_own_prints() -> None:
    marker = new_marker()
    script = build_script(
        req("def f():\n    print('before')\n    return {'a': [1, 2]}\n", "f"), marker, env={}, rlimits={}
    )
    run = subprocess.run(["/usr/bin/python3", "-I", "-S", "-"], input=script.encode(), capture_output=True)
    parsed = parse_output(run.stdout + b"after\n", marker)
    assert parsed.found and parsed.ok and parsed.value == {"a": [1, 2]}
    assert parsed.stdout == "before\nafter\n"


def test_forged_or_damaged_frames_are_not_results() -> None:
    marker = new_marker()
    good = build_script(req("def f():\n    return 'real'\n", "f"), marker)
    run = subprocess.run(["/usr/bin/python3", "-I", "-S", "-"], input=good.encode(), capture_output=True)
    frame = run.stdout
    # A damaged copy before the real frame is ignored; a damaged copy alone reads as corrupted.
    damaged = frame[:-3] + b"xx" + frame[-1:]
    parsed = parse_output(damaged + frame, marker)
    assert parsed.found and parsed.value == "real"
    assert parse_output(damaged, marker) == parse_output(damaged, marker)
    assert parse_output(damaged, marker).error == CORRUPTED_OUTPUT
    assert not parse_output(frame, new_marker()).found  # another run's marker
    assert not parse_output(b"just prints\n", marker).found


# --- functional behaviour, in bubblewrap and in the plain fallback ---------------------------------

ECHO = '''
def echo(s: str, i: int, f: float, b: bool, items: list, mapping: dict, nothing: str = None) -> dict:
    """Echo with types."""
    return {"values": [s, i, f, b, items, mapping, nothing],
            "types": [type(v).__name__ for v in (s, i, f, b, items, mapping, nothing)]}
'''


async def test_args_of_several_types_round_trip(sandbox: LocalSandbox) -> None:
    args = {"s": "x", "i": 7, "f": 2.5, "b": True, "items": [1, "two", None], "mapping": {"k": {"n": [1]}}}
    result = await sandbox.run(req(ECHO, "echo", args))
    assert result.ok, result
    assert result.backend == "local"
    assert result.value == {
        "values": ["x", 7, 2.5, True, [1, "two", None], {"k": {"n": [1]}}, None],
        "types": ["str", "int", "float", "bool", "list", "dict", "NoneType"],
    }


async def test_async_tool_is_awaited(sandbox: LocalSandbox) -> None:
    source = (
        "import asyncio\nasync def later(n: int) -> int:\n    await asyncio.sleep(0.01)\n    return n * 2\n"
    )
    result = await sandbox.run(req(source, "later", {"n": 21}))
    assert result.ok and result.value == 42, result


async def test_a_raising_tool_reports_type_and_message(sandbox: LocalSandbox) -> None:
    source = "def boom(x: int) -> int:\n    if x > 1:\n        raise ValueError('x is too big: %d' % x)\n    return x\n"
    result = await sandbox.run(req(source, "boom", {"x": 5}))
    assert not result.ok and result.value is None
    assert result.error == "ValueError: x is too big: 5"
    assert "raise ValueError('x is too big: %d' % x)" in result.stderr  # the tool's own line in the traceback


async def test_results_are_json_and_non_json_values_become_strings(sandbox: LocalSandbox) -> None:
    source = (
        "class Money:\n    def __str__(self):\n        return '3 EUR'\n"
        "def f() -> dict:\n    return {'n': 1, 'nested': {'l': [1.5, None]}, 'set': {1}, 'money': Money()}\n"
    )
    result = await sandbox.run(req(source, "f"))
    assert result.ok, result
    assert result.value == {"n": 1, "nested": {"l": [1.5, None]}, "set": "{1}", "money": "3 EUR"}
    whole = await sandbox.run(req("def f():\n    return float('nan')\n", "f"))
    assert whole.ok and whole.value == "nan"  # NaN is not JSON: the whole value falls back to str()


async def test_stdout_and_stderr_are_captured_apart_from_the_result(sandbox: LocalSandbox) -> None:
    source = (
        "import sys\n"
        "def chatty() -> str:\n"
        "    print('to stdout')\n"
        "    print('to stderr', file=sys.stderr)\n"
        "    print('\\x00MNEMO-RESULT:0123456789abcdef0123456789abcdef:000000000002:' + '0' * 64 + ':{}')\n"
        "    return 'result'\n"
    )
    result = await sandbox.run(req(source, "chatty"))
    assert result.ok and result.value == "result", result
    assert result.stdout.startswith("to stdout\n") and "MNEMO-RESULT" in result.stdout
    assert result.stderr == "to stderr\n"


async def test_env_is_exactly_the_requests(sandbox: LocalSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNEMO_TEST_SERVER_SECRET", "server-only")
    source = "import os\ndef env() -> dict:\n    return dict(os.environ)\n"
    env = {"LETTA_AGENT_ID": "agent-123", "LETTA_TOOL_ID": "tool-9", "API_KEY": "sk-agent"}
    result = await sandbox.run(req(source, "env", env=env))
    assert result.ok, result
    for key, value in env.items():
        assert result.value[key] == value
    assert "MNEMO_TEST_SERVER_SECRET" not in result.value
    assert not any(k.startswith("PYTHON") for k in result.value)


async def test_unicode_everywhere(sandbox: LocalSandbox) -> None:
    source = "def hi(name: str) -> str:\n    print('héllo', name)\n    return 'こんにちは ' + name + ' 🎉'\n"
    result = await sandbox.run(req(source, "hi", {"name": "Zoë ✓"}))
    assert result.ok, result
    assert result.value == "こんにちは Zoë ✓ 🎉"
    assert result.stdout == "héllo Zoë ✓\n"


async def test_letta_style_tools_may_use_typing_names_without_importing(sandbox: LocalSandbox) -> None:
    source = "def count(words: List[str], by: Optional[int] = None) -> Dict[str, int]:\n    return {w: len(w) for w in words}\n"
    result = await sandbox.run(req(source, "count", {"words": ["ab", "c"]}))
    assert result.ok and result.value == {"ab": 2, "c": 1}, result
    modules = "def enc(text: str) -> str:\n    return json.dumps(base64.b64encode(text.encode()).decode())\n"
    encoded = await sandbox.run(req(modules, "enc", {"text": "hi"}))
    assert encoded.ok and encoded.value == '"aGk="', encoded


@pytest.mark.parametrize(
    ("source", "function", "error"),
    [
        ("def f():\n    return 1\n", "g", "NameError: the tool source defines no function named 'g'"),
        ("def f(:\n    return 1\n", "f", "SyntaxError: "),
        ("import sys\ndef f():\n    sys.exit(3)\n", "f", "SystemExit: 3"),
        (
            "import os\ndef f():\n    os._exit(3)\n",
            "f",
            "Tool f exited with status 3 without returning a result.",
        ),
        ("def f(a: int):\n    return a\n", "f", "TypeError: "),
    ],
)
async def test_broken_tools_are_reported_not_raised(
    sandbox: LocalSandbox, source: str, function: str, error: str
) -> None:
    result = await sandbox.run(req(source, function))
    assert not result.ok
    assert result.error is not None and result.error.startswith(error), result


async def test_exact_timeout_and_cpu_limit_messages(sandbox: LocalSandbox) -> None:
    spin = "def spin():\n    while True:\n        pass\n"
    timed_out = await sandbox.run(req(spin, "spin", limits=SandboxLimits(timeout_s=1.5, cpu_s=30)))
    assert timed_out.error == "Executing tool spin timed out after 1.5 seconds."
    burned = await sandbox.run(req(spin, "spin", limits=SandboxLimits(timeout_s=60, cpu_s=1)))
    assert burned.error == "Tool spin used more than its CPU time limit of 1 seconds and was stopped."


async def test_output_is_capped(sandbox: LocalSandbox) -> None:
    source = "def loud():\n    print('y' * 300_000)\n    return 'done'\n"
    result = await sandbox.run(req(source, "loud", limits=SandboxLimits(max_output_bytes=100_000)))
    assert not result.ok
    assert result.error == "Tool loud wrote more than 100000 bytes of output and was stopped."
    assert len(result.stdout.encode()) <= 100_000


async def test_processes_left_behind_do_not_outlive_the_run(sandbox: LocalSandbox) -> None:
    token = f"mnemo-linger-{secrets.token_hex(6)}"
    source = (
        "import subprocess, sys\n"
        "def leave(token: str) -> int:\n"
        "    p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', token],\n"
        "                         start_new_session=True)\n"
        "    return p.pid\n"
    )
    result = await sandbox.run(req(source, "leave", {"token": token}))
    assert result.ok, result
    assert _processes_with(token) == []


async def test_cancelling_a_run_kills_the_tool(sandbox: LocalSandbox) -> None:
    # A Temporal activity cancel arrives as a CancelledError in `run`: nothing may keep running.
    token = f"mnemo-cancel-{secrets.token_hex(6)}"
    source = (
        "import subprocess, sys, time\n"
        "def slow(token: str) -> str:\n"
        "    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', token], start_new_session=True)\n"
        "    time.sleep(300)\n"
        "    return 'finished'\n"
    )
    task = asyncio.create_task(sandbox.run(req(source, "slow", {"token": token})))
    for _ in range(200):
        if _processes_with(token):
            break
        await asyncio.sleep(0.05)
    assert _processes_with(token), "the tool never started"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _processes_with(token) == []


async def test_concurrent_runs_are_independent(sandbox: LocalSandbox) -> None:
    source = "import os\ndef ident(n: int) -> list:\n    return [n, os.getpid(), os.getuid()]\n"
    results = await asyncio.gather(*(sandbox.run(req(source, "ident", {"n": n})) for n in range(6)))
    assert [r.value[0] for r in results] == list(range(6)), results
    if sandbox.isolated is False and ROOT:
        assert len({r.value[2] for r in results}) == 6  # a throwaway uid each


async def test_pip_requirements_that_are_not_package_names_are_refused(sandbox: LocalSandbox) -> None:
    # Installing them is tests/integration/test_pip_requirements.py's business; a URL never reaches pip.
    result = await sandbox.run(req("def f():\n    return 1\n", "f", pip_requirements=["x @ file:///etc"]))
    assert not result.ok
    assert result.error is not None and "'x @ file:///etc' points at a URL or path" in result.error


@needs_bwrap
async def test_bwrap_tmp_is_private_to_each_run(bwrap_sandbox: LocalSandbox) -> None:
    source = (
        "import os\n"
        "def tmp(write: bool) -> dict:\n"
        "    seen = os.path.exists('/tmp/mine')\n"
        "    if write:\n"
        "        open('/tmp/mine', 'w').write('x')\n"
        "    return {'seen': seen, 'uid': os.getuid(), 'root': sorted(os.listdir('/'))}\n"
    )
    first = await bwrap_sandbox.run(req(source, "tmp", {"write": True}))
    second = await bwrap_sandbox.run(req(source, "tmp", {"write": False}))
    assert first.ok and second.ok, (first, second)
    assert second.value["seen"] is False
    assert first.value["uid"] == 65534
    assert "work" not in first.value["root"] and "root" not in first.value["root"]


# --- backend selection -------------------------------------------------------------------------------


async def test_required_bwrap_that_is_missing_is_unavailable() -> None:
    sandbox = LocalSandbox(isolation="bwrap", bwrap="/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        await sandbox.run(req("def f():\n    return 1\n", "f"))


async def test_auto_without_bwrap_falls_back_loudly(caplog: pytest.LogCaptureFixture) -> None:
    sandbox = LocalSandbox(isolation="auto", bwrap="/nonexistent/bwrap")
    with caplog.at_level(logging.WARNING, logger="mnemo.sandbox.local"):
        first = await sandbox.run(req("def f():\n    return 1\n", "f"))
        second = await sandbox.run(req("def f():\n    return 2\n", "f"))
    assert first.value == 1 and second.value == 2
    assert sandbox.isolated is False
    warnings = [r for r in caplog.records if "TOOLS ARE NOT ISOLATED" in r.getMessage()]
    assert len(warnings) == 1
    assert "network" in warnings[0].getMessage()


@needs_bwrap
async def test_auto_with_bwrap_is_isolated() -> None:
    sandbox: SandboxRunner = LocalSandbox()
    result = await sandbox.run(req("import os\ndef f():\n    return os.getuid()\n", "f"))
    assert result.ok and result.value == 65534
    assert isinstance(sandbox, LocalSandbox) and sandbox.isolated is True


# --- the escape suite ----------------------------------------------------------------------------------


class _Listener:
    """A real TCP listener on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.hits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def escape_ctx(monkeypatch: pytest.MonkeyPatch) -> Iterator[EscapeContext]:
    listener = _Listener()
    tag = secrets.token_hex(6)
    canary = f"canary-{secrets.token_hex(8)}"
    monkeypatch.setenv("MNEMO_ESCAPE_CANARY", canary)
    # Not world-writable on the host, so even the plain fallback's throwaway uid must be refused.
    paths = (f"/usr/mnemo-escape-{tag}", str(REPO / f"mnemo-escape-{tag}"), f"/etc/mnemo-escape-{tag}")
    try:
        yield EscapeContext(
            listener.sock.getsockname()[1], lambda: listener.hits, "MNEMO_ESCAPE_CANARY", canary, paths
        )
    finally:
        listener.close()
        for path in paths:
            Path(path).unlink(missing_ok=True)


_PLACEHOLDER = EscapeContext(0, lambda: 0, "X", "x", ())
ALL_ATTEMPTS = [a.name for a in escape_attempts(_PLACEHOLDER)]
NON_NAMESPACE_ATTEMPTS = [a.name for a in escape_attempts(_PLACEHOLDER) if not a.needs_namespaces]


@needs_bwrap
@pytest.mark.parametrize("name", ALL_ATTEMPTS)
async def test_bwrap_contains(bwrap_sandbox: LocalSandbox, escape_ctx: EscapeContext, name: str) -> None:
    [outcome] = await run_escape_suite(bwrap_sandbox, escape_ctx, names={name})
    assert outcome.contained, outcome.describe()


@needs_root
@pytest.mark.parametrize("name", NON_NAMESPACE_ATTEMPTS)
async def test_plain_fallback_contains_what_rlimits_and_uids_can(
    plain_sandbox: LocalSandbox, escape_ctx: EscapeContext, name: str
) -> None:
    [outcome] = await run_escape_suite(plain_sandbox, escape_ctx, names={name})
    assert outcome.contained, outcome.describe()


@needs_bwrap
async def test_after_the_whole_suite_everything_is_healthy(escape_ctx: EscapeContext) -> None:
    sandbox = LocalSandbox(isolation="bwrap")
    outcomes = await run_escape_suite(sandbox, escape_ctx)
    assert len(outcomes) == len(ALL_ATTEMPTS)
    assert [o.describe() for o in outcomes if not o.contained] == []
    assert escape_ctx.listener_hits() == 0
    # The sandbox still runs a normal tool, and this process can still start processes of its own.
    result = await sandbox.run(
        req(ECHO, "echo", {"s": "ok", "i": 1, "f": 1.0, "b": False, "items": [], "mapping": {}})
    )
    assert result.ok and result.value["values"][0] == "ok", result
    true = await asyncio.create_subprocess_exec("true")
    assert await true.wait() == 0
    assert _sandbox_processes() == []


def _sandbox_processes() -> list[int]:
    """Live processes running as one of the sandbox's throwaway uids."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                status = Path(f"/proc/{entry.name}/status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            uid = int(fields.get("Uid", "0").split()[0])
            if _UID_BASE <= uid < _UID_BASE + _UID_SPAN and fields.get("State", "").split()[:1] != ["Z"]:
                found.append(int(entry.name))
    return found


def _processes_with(token: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            except OSError:
                continue
            if token.encode() in cmdline and int(entry.name) != os.getpid():
                found.append(int(entry.name))
    return found
