"""The e2b sandbox backend, driven through the real `e2b` SDK against a STAND-IN of E2B on 127.0.0.1.

The E2B cloud cannot be reached from these machines (only loopback), so these tests do not talk to
E2B. They run the installed SDK (2.63) unchanged against a local stand-in of the two services it
calls, reached through the SDK's own options (`api_url`, `sandbox_url`, `http_version`):

- the control-plane REST API: `POST /v2/sandboxes` (201 with sandboxID/envdVersion/envdAccessToken,
  or 401/429/500 error bodies, as the SDK's generated client expects) and `DELETE /sandboxes/{id}`;
- envd, the daemon inside a sandbox: `POST /files` (octet-stream upload) and the Connect RPC service
  `process.Process` (Start as a server stream, SendSignal), served by the SDK's own generated
  `ProcessASGIApplication` (connectrpc) with the JSON codec the SDK uses.

The stand-in's "sandbox" runs commands as real processes on this host (`/bin/bash -l -c ...`, as
envd does), in a scratch directory. So this checks the adapter's use of the SDK and its handling of
results, timeouts, output caps and errors, and that every sandbox is killed — NOT E2B's isolation.
Untested here: real E2B templates (their python3, pip with network), HTTP/2 and TLS (uvicorn has no
h2c, so the runner is given http_version="1.1"), per-sandbox domains, E2B's real latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from e2b.envd.client_shared import ENVD_JSON_CODEC
from e2b.envd.process import process_pb
from e2b.envd.process.process_connect import Process, ProcessASGIApplication
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mnemo.sandbox.base import SandboxLimits, SandboxRequest, SandboxUnavailable
from mnemo.sandbox.e2b import E2BSandbox

API_KEY = "e2b_standin_key"
ENVD_VERSION = "0.6.7"
PE = process_pb.ProcessEvent


@dataclass
class _Box:
    token: str
    workdir: str
    files: list[str] = field(default_factory=list)
    procs: dict[int, asyncio.subprocess.Process] = field(default_factory=dict)


class StandIn:
    """E2B's REST API and envd on one loopback port, recording what the SDK asked for."""

    def __init__(self) -> None:
        self.boxes: dict[str, _Box] = {}
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.create_failure: tuple[int, str] | None = None  # (status, message) for the next creates
        self.started: list[dict[str, Any]] = []  # Start requests: cmd, args, envs, pid
        self.signals: list[tuple[int, str]] = []  # SendSignal requests: (pid, signal name)
        self.procs: list[asyncio.subprocess.Process] = []
        self.lock = threading.Lock()
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # --- control plane ----------------------------------------------------------------------------

    async def create_sandbox(self, request: Request) -> Response:
        if request.headers.get("x-api-key") != API_KEY:
            return JSONResponse({"code": 401, "message": "Invalid API key"}, status_code=401)
        if self.create_failure is not None:
            status, message = self.create_failure
            # Should-Retry: false keeps the SDK from retrying 429/5xx (it honours the header).
            return JSONResponse(
                {"code": status, "message": message}, status_code=status, headers={"Should-Retry": "false"}
            )
        body = await request.json()
        sandbox_id = "sbx" + uuid.uuid4().hex[:12]
        box = _Box(token=uuid.uuid4().hex, workdir=tempfile.mkdtemp(prefix="e2b-standin-"))
        with self.lock:
            self.boxes[sandbox_id] = box
            self.created.append(body)
        return JSONResponse(
            {
                "templateID": body.get("templateID", "base"),
                "sandboxID": sandbox_id,
                "clientID": "standin",
                "envdVersion": ENVD_VERSION,
                "envdAccessToken": box.token,
            },
            status_code=201,
        )

    async def delete_sandbox(self, request: Request) -> Response:
        sandbox_id = request.path_params["sandbox_id"]
        with self.lock:
            box = self.boxes.pop(sandbox_id, None)
            self.deleted.append(sandbox_id)
        if box is None:
            return JSONResponse({"code": 404, "message": "not found"}, status_code=404)
        for proc in box.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for path in box.files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        shutil.rmtree(box.workdir, ignore_errors=True)
        return Response(status_code=204)

    # --- envd -------------------------------------------------------------------------------------

    def box_for(self, headers: Any) -> _Box | None:
        box = self.boxes.get(headers.get("e2b-sandbox-id", ""))
        if box is None or headers.get("x-access-token") != box.token:
            return None
        return box

    async def upload(self, request: Request) -> Response:
        box = self.box_for(request.headers)
        if box is None:
            return JSONResponse({"code": 401, "message": "bad access token"}, status_code=401)
        path = request.query_params["path"]
        # The adapter only writes its script under /tmp; refuse anything else on this host.
        if not path.startswith("/tmp/") or "/../" in path:
            return JSONResponse({"code": 400, "message": f"stand-in refuses {path}"}, status_code=400)
        data = await request.body()
        await asyncio.to_thread(Path(path).write_bytes, data)
        box.files.append(path)
        return JSONResponse([{"name": os.path.basename(path), "type": "file", "path": path}])

    def app(self) -> Any:
        rest = Starlette(
            routes=[
                Route("/v2/sandboxes", self.create_sandbox, methods=["POST"]),
                Route("/sandboxes/{sandbox_id}", self.delete_sandbox, methods=["DELETE"]),
                Route("/files", self.upload, methods=["POST"]),
            ]
        )
        rpc = ProcessASGIApplication(_Process(self), codecs=[ENVD_JSON_CODEC])

        async def dispatch(scope: Any, receive: Any, send: Any) -> None:
            target = rpc if scope.get("path", "").startswith("/process.Process/") else rest
            await target(scope, receive, send)

        return dispatch

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> StandIn:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the E2B stand-in did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def live_processes(self, settle_s: float = 10.0) -> int:
        """Processes still running once the stand-in's loop has had time to reap the killed ones."""
        deadline = time.monotonic() + settle_s
        while any(p.returncode is None for p in self.procs) and time.monotonic() < deadline:
            time.sleep(0.02)
        return sum(1 for p in self.procs if p.returncode is None)


class _Process(Process):
    """envd's process service: real processes, events as envd sends them (the other methods
    answer UNIMPLEMENTED, from the generated base)."""

    def __init__(self, standin: StandIn) -> None:
        self.standin = standin

    async def start(
        self, request: process_pb.StartRequest, ctx: Any
    ) -> AsyncIterator[process_pb.StartResponse]:
        from connectrpc.code import Code
        from connectrpc.errors import ConnectError

        box = self.standin.box_for(ctx.request_headers)
        if box is None:
            raise ConnectError(Code.UNAUTHENTICATED, "bad access token")
        config = request.process or process_pb.ProcessConfig(cmd="/bin/true")
        envs = dict(config.envs or {})
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": box.workdir, **envs}
        proc = await asyncio.create_subprocess_exec(
            config.cmd,
            *config.args,
            env=env,
            cwd=config.cwd or box.workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        box.procs[proc.pid] = proc
        self.standin.procs.append(proc)
        self.standin.started.append(
            {"cmd": config.cmd, "args": list(config.args), "envs": envs, "pid": proc.pid}
        )
        queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()

        async def pump(stream: asyncio.StreamReader, name: str) -> None:
            while chunk := await stream.read(65536):
                await queue.put((name, chunk))
            await queue.put(None)

        assert proc.stdout is not None and proc.stderr is not None
        pumps = [
            asyncio.create_task(pump(proc.stdout, "stdout")),
            asyncio.create_task(pump(proc.stderr, "stderr")),
        ]
        try:
            yield process_pb.StartResponse(event=PE(event=_oneof("start", PE.StartEvent(pid=proc.pid))))
            open_streams = 2
            while open_streams:
                item = await queue.get()
                if item is None:
                    open_streams -= 1
                    continue
                name, chunk = item
                data = PE.DataEvent(output=_oneof(name, chunk))
                yield process_pb.StartResponse(event=PE(event=_oneof("data", data)))
            code = await proc.wait()
            # Go's os.ProcessState: ExitCode() is -1 for a signal, String() says which.
            status = f"exit status {code}" if code >= 0 else f"signal: {signal.Signals(-code).name}"
            end = PE.EndEvent(exit_code=code if code >= 0 else -1, exited=code >= 0, status=status)
            yield process_pb.StartResponse(event=PE(event=_oneof("end", end)))
        finally:
            for task in pumps:
                task.cancel()
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()

    async def send_signal(
        self, request: process_pb.SendSignalRequest, ctx: Any
    ) -> process_pb.SendSignalResponse:
        box = self.standin.box_for(ctx.request_headers)
        pid = request.process.selector.value if request.process and request.process.selector else None
        proc = box.procs.get(pid) if box is not None and isinstance(pid, int) else None
        if isinstance(pid, int):
            self.standin.signals.append((pid, request.signal.name))
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(
                    proc.pid,
                    signal.SIGKILL if request.signal == process_pb.Signal.SIGKILL else signal.SIGTERM,
                )
        return process_pb.SendSignalResponse()


def _oneof(field_name: str, value: Any) -> Any:
    from protobuf import Oneof

    return Oneof(field=field_name, value=value)


@pytest.fixture(scope="module")
def standin() -> Iterator[StandIn]:
    server = StandIn().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _no_sandbox_left(standin: StandIn) -> Iterator[None]:
    standin.create_failure = None
    yield
    standin.create_failure = None
    # Every call kills its sandbox, whatever happened in it.
    assert standin.boxes == {}, f"sandboxes left alive: {list(standin.boxes)}"


@pytest.fixture
def e2b(standin: StandIn) -> E2BSandbox:
    return E2BSandbox(API_KEY, api_url=standin.url, sandbox_url=standin.url, http_version="1.1")


def req(source: str, fn: str = "f", **kw: Any) -> SandboxRequest:
    return SandboxRequest(source_code=source, function_name=fn, **kw)


async def test_runs_a_tool_with_args_and_returns_json(e2b: E2BSandbox, standin: StandIn) -> None:
    src = "import sys\ndef f(a: int, b: str = 'x'):\n    print('out', a)\n    print('err', file=sys.stderr)\n    return {'a': a, 'b': b, 'l': [1, 2]}\n"
    result = await e2b.run(req(src, args={"a": 3, "b": "y"}))
    assert result.ok, result
    assert result.backend == "e2b"
    assert result.value == {"a": 3, "b": "y", "l": [1, 2]}
    assert result.stdout == "out 3\n"
    assert result.stderr == "err\n"
    # The SDK's own command shape reached envd: a login bash running our script with python3.
    cmd = standin.started[-1]
    assert cmd["cmd"] == "/bin/bash" and cmd["args"][:2] == ["-l", "-c"]
    assert cmd["args"][2].startswith("python3 -I /tmp/mnemo_tool_")
    assert standin.created[-1]["templateID"] == "base"


async def test_async_tool_and_exception(e2b: E2BSandbox) -> None:
    ok = await e2b.run(
        req("import asyncio\nasync def f(n):\n    await asyncio.sleep(0)\n    return n * 2\n", args={"n": 21})
    )
    assert ok.ok and ok.value == 42
    bad = await e2b.run(req("def f():\n    raise ValueError('nope')\n"))
    assert not bad.ok
    assert bad.error == "ValueError: nope"
    assert "Traceback" in bad.stderr


async def test_env_reaches_the_tool(e2b: E2BSandbox) -> None:
    src = "import os\ndef f():\n    return {k: os.environ.get(k) for k in ('SECRET', 'LETTA_AGENT_ID')}\n"
    result = await e2b.run(req(src, env={"SECRET": "s3", "LETTA_AGENT_ID": "agent-1"}))
    assert result.value == {"SECRET": "s3", "LETTA_AGENT_ID": "agent-1"}


async def test_timeout_uses_lettas_text_and_kills_the_process(e2b: E2BSandbox, standin: StandIn) -> None:
    result = await e2b.run(
        req("import time\ndef slow():\n    time.sleep(60)\n", "slow", limits=SandboxLimits(timeout_s=1))
    )
    assert not result.ok
    assert result.error == "Executing tool slow timed out after 1 seconds."
    # The adapter killed the command itself (SendSignal), not only the sandbox around it.
    assert (standin.started[-1]["pid"], "SIGKILL") in standin.signals
    assert standin.live_processes() == 0


async def test_huge_output_is_capped(e2b: E2BSandbox, standin: StandIn) -> None:
    limits = SandboxLimits(timeout_s=30, max_output_bytes=50_000)
    result = await e2b.run(req("def f():\n    while True:\n        print('x' * 1000)\n", limits=limits))
    assert not result.ok
    assert result.error == "Tool f wrote more than 50000 bytes of output and was stopped."
    assert len(result.stdout) <= 50_000
    assert (standin.started[-1]["pid"], "SIGKILL") in standin.signals


async def test_a_tool_that_dies_without_a_result(e2b: E2BSandbox) -> None:
    result = await e2b.run(req("import os\ndef f():\n    os._exit(3)\n"))
    assert not result.ok
    assert result.error is not None and "exited (status 3)" in result.error


async def test_pip_failure_is_reported(e2b: E2BSandbox) -> None:
    # An invalid requirement fails inside pip before any download, on any machine.
    result = await e2b.run(req("def f():\n    return 1\n", pip_requirements=["not a valid requirement!!"]))
    assert not result.ok
    assert result.error is not None and result.error.startswith(
        "pip install of not a valid requirement!! failed"
    )


async def test_missing_key_is_unavailable(monkeypatch: pytest.MonkeyPatch, standin: StandIn) -> None:
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    before = len(standin.created)
    with pytest.raises(SandboxUnavailable, match="E2B_API_KEY"):
        await E2BSandbox(None, api_url=standin.url, http_version="1.1").run(req("def f():\n    return 1\n"))
    assert len(standin.created) == before


async def test_rejected_key_is_unavailable(standin: StandIn) -> None:
    runner = E2BSandbox("e2b_wrong", api_url=standin.url, sandbox_url=standin.url, http_version="1.1")
    with pytest.raises(SandboxUnavailable, match="rejected the API key"):
        await runner.run(req("def f():\n    return 1\n"))


async def test_rate_limit_and_server_errors_are_clear(e2b: E2BSandbox, standin: StandIn) -> None:
    standin.create_failure = (429, "too many sandboxes")
    limited = await e2b.run(req("def f():\n    return 1\n"))
    assert not limited.ok
    assert limited.error is not None and limited.error.startswith(
        "E2B rate limit reached while creating a sandbox"
    )
    assert "too many sandboxes" in limited.error
    standin.create_failure = (500, "boom")
    failed = await e2b.run(req("def f():\n    return 1\n"))
    assert failed.error is not None and failed.error.startswith("E2B failed while creating a sandbox")
    assert "boom" in failed.error


async def test_unreachable_api_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    runner = E2BSandbox(API_KEY, api_url=f"http://127.0.0.1:{port}", http_version="1.1")
    with pytest.raises(SandboxUnavailable, match="E2B is unreachable"):
        await runner.run(req("def f():\n    return 1\n"))


async def test_unreachable_envd_still_kills_the_sandbox(standin: StandIn) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runner = E2BSandbox(
        API_KEY, api_url=standin.url, sandbox_url=f"http://127.0.0.1:{port}", http_version="1.1"
    )
    before = len(standin.deleted)
    result = await runner.run(req("def f():\n    return 1\n"))
    assert not result.ok
    assert result.error is not None and result.error.startswith(
        "The E2B sandbox was unreachable while running tool f"
    )
    assert len(standin.deleted) == before + 1
    assert standin.boxes == {}


async def test_concurrent_calls_get_their_own_sandboxes(e2b: E2BSandbox, standin: StandIn) -> None:
    before = len(standin.created)
    src = "def f(i):\n    return i\n"
    results = await asyncio.gather(*(e2b.run(req(src, args={"i": i})) for i in range(4)))
    assert [r.value for r in results] == [0, 1, 2, 3]
    assert len(standin.created) == before + 4
