"""Running the fake: in a background thread of the test process (`FakeLLM`) or standalone
(`serve_forever`, behind `mnemo fake-llm --port N` and `python -m mnemo.fakellm.server`)."""

from __future__ import annotations

import argparse
import socket
import threading
import time
from types import TracebackType
from typing import Any, Literal

import uvicorn

from mnemo.fakellm.app import create_app
from mnemo.fakellm.script import Fault, Policy, Reply
from mnemo.fakellm.state import DEFAULT_MAX_RECORDED, FakeState

_START_TIMEOUT = 10.0


def _config(app: Any, host: str, port: int) -> uvicorn.Config:
    # No access log and no lifespan: per-request logging would show up in latency benchmarks.
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )


class FakeLLM:
    """A scriptable OpenAI-compatible server on 127.0.0.1, run on a thread of the calling process.

    Scripting goes straight to the shared state (no HTTP), so it is safe from any thread or loop.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, max_recorded: int = DEFAULT_MAX_RECORDED):
        self._host = host
        self._requested_port = port
        self._state = FakeState(max_recorded=max_recorded)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeLLM:
        if self._thread is not None:
            raise RuntimeError("FakeLLM is already running")
        # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on such sockets (else ~40 ms per request).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._requested_port))
        self._port = sock.getsockname()[1]
        server = uvicorn.Server(_config(create_app(self._state), self._host, self._port))
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"fake-llm:{self._port}", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError(f"fake LLM did not start on {self._host}:{self._port}")
            time.sleep(0.005)
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        # force_exit: hanging requests (Fault.hang) must not hold the shutdown for their full length.
        self._server.should_exit = True
        self._server.force_exit = True
        self._thread.join(timeout=_START_TIMEOUT)
        self._server = self._thread = None

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeLLM is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """OpenAI base URL, e.g. `http://127.0.0.1:PORT/v1` (what litellm calls `api_base`)."""
        return f"http://{self._host}:{self.port}/v1"

    # --- scripting ------------------------------------------------------------------------------

    def script(self, *items: Reply | Fault, model: str | None = None) -> None:
        """Queue replies/faults. With `model`, only requests whose wire `model` equals it take them
        (litellm's `openai/m1` sends `m1`)."""
        self._state.script(list(items), model=model)

    def set_default(self, item: Reply | Fault) -> None:
        """Answer every unscripted chat request with `item`."""
        self._state.set_default(item)

    def set_policy(
        self,
        name: Literal["echo", "tool_then_text"],
        *,
        tool_name: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        if name == "tool_then_text" and not tool_name:
            raise ValueError("policy 'tool_then_text' needs tool_name")
        self._state.set_policy(Policy(name=name, tool_name=tool_name, arguments=arguments or {}))

    def reset(self) -> None:
        """Clear queues and recorded requests; back to the `echo` policy."""
        self._state.reset()

    @property
    def pending(self) -> int:
        return self._state.pending()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Recorded request bodies (chat completions and embeddings), oldest first."""
        return self._state.requests()

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return self._state.requests("chat")

    @property
    def embedding_requests(self) -> list[dict[str, Any]]:
        return self._state.requests("embeddings")


def serve_forever(host: str, port: int) -> None:
    """Serve a fresh fake in the foreground until interrupted; script it over `/_fake/`."""
    uvicorn.Server(_config(create_app(FakeState()), host, port)).run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Scriptable fake OpenAI-compatible LLM server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8299)
    args = parser.parse_args(argv)
    serve_forever(args.host, args.port)


if __name__ == "__main__":
    main()
