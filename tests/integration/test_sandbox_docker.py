"""The docker sandbox backend against a real Docker Engine API (podman's service, runc, cgroups).

Functional behaviour first (arguments, async tools, exceptions, JSON results, output, environment),
then the shared escape suite (`mnemo.sandbox.escape_suite`), each attempt in its own container.
After every test no container of ours may be left, running or not.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from mnemo.sandbox.base import SandboxLimits, SandboxRequest, SandboxUnavailable
from mnemo.sandbox.docker import LABEL, DockerSandbox
from mnemo.sandbox.escape_suite import EscapeContext, escape_attempts, run_escape_suite

pytestmark = pytest.mark.usefixtures("_no_container_left")


def req(source: str, fn: str = "f", **kw: object) -> SandboxRequest:
    return SandboxRequest(source_code=source, function_name=fn, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def api(docker_base_url: str) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=docker_base_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def runner(docker_base_url: str) -> Iterator[DockerSandbox]:
    sandbox = DockerSandbox(base_url=docker_base_url)
    try:
        yield sandbox
    finally:
        sandbox.close()


@pytest.fixture
def _no_container_left(api: docker.DockerClient) -> Iterator[None]:
    yield
    left = api.containers.list(all=True, filters={"label": LABEL})
    assert left == [], f"containers left behind: {[(c.short_id, c.status) for c in left]}"


# --- functional ---------------------------------------------------------------------------------


async def test_args_result_and_output(runner: DockerSandbox) -> None:
    src = (
        "import sys\n"
        "def f(a: int, b: str = 'x', c: dict | None = None):\n"
        "    print('hello', a)\n"
        "    print('careful', file=sys.stderr)\n"
        "    return {'a': a, 'b': b, 'c': c, 'list': [1, 2.5, None, True]}\n"
    )
    result = await runner.run(req(src, args={"a": 1, "b": "y", "c": {"k": [1]}}))
    assert result.ok, result
    assert result.backend == "docker"
    assert result.value == {"a": 1, "b": "y", "c": {"k": [1]}, "list": [1, 2.5, None, True]}
    assert result.stdout == "hello 1\n"
    assert result.stderr == "careful\n"
    assert result.duration_s > 0


async def test_non_json_result_is_stringified(runner: DockerSandbox) -> None:
    result = await runner.run(req("def f():\n    return {1, 2}\n"))
    assert result.ok and result.value in ("{1, 2}", "{2, 1}")


async def test_async_tool(runner: DockerSandbox) -> None:
    src = "import asyncio\nasync def f(n: int):\n    await asyncio.sleep(0.01)\n    return n * 2\n"
    result = await runner.run(req(src, args={"n": 21}))
    assert result.ok and result.value == 42


async def test_exception_is_reported_not_raised(runner: DockerSandbox) -> None:
    result = await runner.run(req("def f(x):\n    return 10 / x\n", args={"x": 0}))
    assert not result.ok
    assert result.error == "ZeroDivisionError: division by zero"
    assert "Traceback" in result.stderr and "10 / x" in result.stderr


async def test_env_is_exactly_the_requests(runner: DockerSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNEMO_SERVER_SECRET", "server-only")
    src = "import os\ndef f():\n    return dict(os.environ)\n"
    env = {"API_TOKEN": "t0k", "LETTA_AGENT_ID": "agent-1", "LETTA_TOOL_ID": "tool-1"}
    result = await runner.run(req(src, env=env))
    assert result.ok, result
    assert result.value == env
    empty = await runner.run(req(src))
    assert empty.value == {}


async def test_runs_unprivileged_without_network(runner: DockerSandbox) -> None:
    src = "import os, socket\ndef f():\n    return {'uid': os.getuid(), 'ifaces': [n for _, n in socket.if_nameindex()]}\n"
    result = await runner.run(req(src))
    assert result.ok, result
    assert result.value == {"uid": 65534, "ifaces": ["lo"]}


async def test_timeout_uses_lettas_text(runner: DockerSandbox) -> None:
    src = "import time\ndef slow_tool():\n    time.sleep(60)\n"
    result = await runner.run(req(src, "slow_tool", limits=SandboxLimits(timeout_s=1)))
    assert not result.ok
    assert result.error == "Executing tool slow_tool timed out after 1 seconds."


async def test_tool_that_exits_without_result(runner: DockerSandbox) -> None:
    result = await runner.run(req("import os\ndef f():\n    print('bye', flush=True)\n    os._exit(7)\n"))
    assert not result.ok
    assert result.error == "Tool f exited (status 7) without returning a result."
    assert result.stdout == "bye\n"


async def test_memory_cgroup_kill_is_reported(runner: DockerSandbox) -> None:
    # Each process stays under its own address-space limit, together they pass the cgroup's
    # memory limit: the kernel's OOM killer stops the biggest one, the tool's main process.
    src = (
        "import os, time\n"
        "def f():\n"
        "    if os.fork() == 0:\n"
        "        held = b'x' * (100 * 2**20)\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "    time.sleep(0.5)\n"
        "    big = b'y' * (200 * 2**20)\n"
        "    return len(big)\n"
    )
    result = await runner.run(req(src, limits=SandboxLimits(memory_mb=256, timeout_s=30)))
    assert not result.ok, result
    assert result.error == (
        "Tool f was killed: it exceeded its memory limit of 256 MB (or its CPU time limit of 60 seconds)."
    )


async def test_cancelled_run_removes_its_container(runner: DockerSandbox, api: docker.DockerClient) -> None:
    import asyncio

    src = "import time\ndef f():\n    time.sleep(60)\n"
    task = asyncio.ensure_future(runner.run(req(src)))
    for _ in range(400):  # until the tool's container runs (bounded)
        if api.containers.list(filters={"label": LABEL}):
            break
        await asyncio.sleep(0.05)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_pip_requirements_that_are_not_package_names_are_refused(runner: DockerSandbox) -> None:
    # Installing them is tests/integration/test_pip_requirements.py's business; a URL never reaches pip.
    result = await runner.run(req("def f():\n    return 1\n", pip_requirements=["x @ file:///etc"]))
    assert not result.ok
    assert result.error is not None and "'x @ file:///etc' points at a URL or path" in result.error


async def test_missing_image_is_unavailable(docker_base_url: str) -> None:
    runner = DockerSandbox(base_url=docker_base_url, image="mnemo-sandbox:does-not-exist")
    with pytest.raises(SandboxUnavailable, match="scripts/sandbox-image.sh"):
        await runner.run(req("def f():\n    return 1\n"))
    runner.close()


async def test_no_daemon_is_unavailable(tmp_path: Path) -> None:
    runner = DockerSandbox(base_url=f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(SandboxUnavailable, match="Docker is not available"):
        await runner.run(req("def f():\n    return 1\n"))


async def test_no_docker_host_is_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(SandboxUnavailable, match="set DOCKER_HOST"):
        await DockerSandbox().run(req("def f():\n    return 1\n"))


async def test_concurrent_calls_are_isolated(runner: DockerSandbox) -> None:
    import asyncio

    # Each call writes then reads a file in /tmp: a shared /tmp would let one see another's.
    src = (
        "import os\n"
        "def f(i):\n"
        "    seen = sorted(os.listdir('/tmp'))\n"
        "    open('/tmp/mark-%d' % i, 'w').close()\n"
        "    return seen\n"
    )
    results = await asyncio.gather(*(runner.run(req(src, args={"i": i})) for i in range(4)))
    assert [r.value for r in results] == [[], [], [], []], results


# --- the shared escape suite -----------------------------------------------------------------------


class _Listener:
    """A TCP listener on the host's loopback that counts connections."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def escape_ctx() -> Iterator[EscapeContext]:
    listener = _Listener()
    canary_name, canary_value = "MNEMO_ESCAPE_CANARY", f"canary-{uuid.uuid4().hex}"
    os.environ[canary_name] = canary_value
    tag = uuid.uuid4().hex[:8]
    forbidden = (
        str(Path.cwd() / f".escape-{tag}"),
        f"/var/tmp/mnemo-escape-{tag}",
        f"/etc/mnemo-escape-{tag}",
    )
    try:
        yield EscapeContext(
            listener_port=listener.port,
            listener_hits=lambda: listener.hits,
            canary_name=canary_name,
            canary_value=canary_value,
            forbidden_paths=forbidden,
        )
    finally:
        os.environ.pop(canary_name, None)
        listener.close()
        for path in forbidden:
            if os.path.lexists(path):
                os.unlink(path)


_ATTEMPTS = [a.name for a in escape_attempts(EscapeContext(0, lambda: 0, "X", "x", ()))]


@pytest.mark.parametrize("name", _ATTEMPTS)
async def test_escape_is_contained(runner: DockerSandbox, escape_ctx: EscapeContext, name: str) -> None:
    [outcome] = await run_escape_suite(runner, escape_ctx, names={name})
    assert outcome.contained, outcome.describe()
    if not outcome.result.ok:
        # Contained with a clear error: a Python exception or one of the sandbox's own messages.
        assert outcome.result.error, outcome.describe()


async def test_service_still_serves_after_the_suite(runner: DockerSandbox, api: docker.DockerClient) -> None:
    assert api.ping()
    result = await runner.run(req("def f(x):\n    return x + 1\n", args={"x": 1}))
    assert result.ok and result.value == 2
