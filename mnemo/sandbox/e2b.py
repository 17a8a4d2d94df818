"""Run custom tools in E2B cloud sandboxes (the `e2b` SDK).

Each call creates a sandbox, uploads the shared standalone script (`script.build_script`), runs it
with `python3`, parses the framed JSON result from stdout and kills the sandbox, whatever happens.
Letta reuses one sandbox per configuration; a fresh one per call keeps calls isolated from each
other at the price of E2B's sandbox start time.

Failures, by who has to act:
- E2B cannot be used at all (no `E2B_API_KEY`, key rejected, API unreachable): `SandboxUnavailable`,
  nothing ran, the message says what to fix.
- Everything that concerns one call (rate limit, E2B errors, the tool's timeout, output cap, a tool
  that raised or died): an error `SandboxResult`, like the other backends.
"""

from __future__ import annotations

import asyncio
import math
import os
import shlex
import time
from typing import Any

import httpx

from mnemo.sandbox.base import Backend, SandboxRequest, SandboxResult, SandboxUnavailable
from mnemo.sandbox.script import (
    build_script,
    new_marker,
    output_limit_error,
    parse_output,
    resource_limits,
    timeout_error,
)

SCRIPT_DIR = "/tmp"
# Sandbox lifetime beyond the tool's own timeout: creation, upload, pip and the kill.
SANDBOX_GRACE_S = 60
PIP_TIMEOUT_S = 300.0


class _Budget:
    """Collects a command's output up to max_bytes and signals when it is exceeded."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.size = 0
        self.exceeded = asyncio.Event()

    def _add(self, sink: list[str], chunk: str) -> None:
        if self.exceeded.is_set():
            return
        self.size += len(chunk.encode("utf-8", "surrogateescape"))
        sink.append(chunk)
        if self.size > self.max_bytes:
            self.exceeded.set()

    def on_stdout(self, chunk: str) -> None:
        self._add(self.stdout, chunk)

    def on_stderr(self, chunk: str) -> None:
        self._add(self.stderr, chunk)


class E2BSandbox:
    """A `SandboxRunner` on E2B. Connection options are the SDK's (`api_url`, `sandbox_url`,
    `domain`, `http_version`, `request_timeout`), for self-hosted E2B and for tests."""

    backend: Backend = "e2b"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        template: str | None = None,
        domain: str | None = None,
        api_url: str | None = None,
        sandbox_url: str | None = None,
        http_version: str | None = None,
        request_timeout_s: float | None = None,
    ) -> None:
        self.api_key = api_key or os.environ.get("E2B_API_KEY") or None
        self.template = template
        self._opts: dict[str, Any] = {
            k: v
            for k, v in {
                "domain": domain,
                "api_url": api_url,
                "sandbox_url": sandbox_url,
                "http_version": http_version,
                "request_timeout": request_timeout_s,
            }.items()
            if v is not None
        }

    def _where(self) -> str:
        return str(self._opts.get("api_url") or f"https://api.{self._opts.get('domain', 'e2b.app')}")

    async def run(self, request: SandboxRequest) -> SandboxResult:
        from e2b import AsyncSandbox

        if not self.api_key:
            raise SandboxUnavailable(
                "The e2b sandbox needs an API key: set E2B_API_KEY (https://e2b.dev/dashboard?tab=keys) "
                "or choose the local or docker sandbox"
            )
        started = time.perf_counter()
        lifetime = math.ceil(request.limits.timeout_s) + SANDBOX_GRACE_S
        try:
            sandbox = await AsyncSandbox.create(
                template=self.template, timeout=lifetime, api_key=self.api_key, **self._opts
            )
        except Exception as exc:
            return self._error_result(exc, request, started, during="creating a sandbox")
        try:
            result = await self._run_in(sandbox, request)
        except Exception as exc:
            result = self._error_result(exc, request, started, during=f"running tool {request.function_name}")
        finally:
            try:
                await sandbox.kill()
            except Exception:
                # A sandbox we cannot kill expires on its own after `lifetime` seconds.
                pass
        result.duration_s = time.perf_counter() - started
        return result

    async def _run_in(self, sandbox: Any, request: SandboxRequest) -> SandboxResult:
        from e2b import CommandExitException

        name, limits = request.function_name, request.limits
        if request.pip_requirements:
            packages = " ".join(shlex.quote(p) for p in request.pip_requirements)
            try:
                await sandbox.commands.run(
                    f"python3 -m pip install --disable-pip-version-check --quiet -- {packages}",
                    timeout=PIP_TIMEOUT_S,
                )
            except CommandExitException as exc:
                return SandboxResult(
                    ok=False,
                    error=f"pip install of {', '.join(request.pip_requirements)} failed in the E2B sandbox "
                    f"(exit status {exc.exit_code}): {_tail(exc.stderr or exc.stdout)}",
                    stdout=exc.stdout or "",
                    stderr=exc.stderr or "",
                    backend=self.backend,
                )
        marker = new_marker()
        # The E2B user is the sandbox's own: per-uid process limits are safe there.
        script = build_script(request, marker, env=request.env, rlimits=resource_limits(limits))
        path = f"{SCRIPT_DIR}/mnemo_tool_{marker}.py"
        await sandbox.files.write(path, script.encode("ascii"), use_octet_stream=True)

        budget = _Budget(limits.max_output_bytes)
        handle = await sandbox.commands.run(
            f"python3 -I {shlex.quote(path)}",
            background=True,
            on_stdout=budget.on_stdout,
            on_stderr=budget.on_stderr,
            # Our own deadline below ends the call; the SDK's stream deadline is only a backstop.
            timeout=limits.timeout_s + SANDBOX_GRACE_S,
        )
        waiting = asyncio.ensure_future(handle.wait())
        capped = asyncio.ensure_future(budget.exceeded.wait())
        try:
            await asyncio.wait(
                {waiting, capped}, timeout=limits.timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            capped.cancel()
        stopped: str | None = None
        if not waiting.done():
            stopped = output_limit_error(name, limits.max_output_bytes) if capped.done() else None
            stopped = stopped or timeout_error(name, limits.timeout_s)
            waiting.cancel()
            try:
                await handle.kill()
                await handle.disconnect()
            except Exception:
                pass  # the sandbox is killed next anyway
        exit_code: int | None = 0
        exit_error: str | None = None
        if stopped is None:
            try:
                await waiting
            except CommandExitException as exc:
                exit_code, exit_error = exc.exit_code, exc.error
        stdout = "".join(budget.stdout)
        stderr = "".join(budget.stderr)[: limits.max_output_bytes]
        parsed = parse_output(stdout.encode("utf-8", "surrogateescape"), marker)
        tool_stdout = parsed.stdout[: limits.max_output_bytes]
        if stopped is None and parsed.found:
            return SandboxResult(
                ok=parsed.ok,
                value=parsed.value,
                error=parsed.error,
                stdout=tool_stdout,
                stderr=stderr,
                backend=self.backend,
            )
        if stopped is None:
            detail = f": {exit_error}" if exit_error else ""
            stopped = parsed.error or (
                f"Tool {name} exited (status {exit_code}{detail}) without returning a result. "
                f"{_tail(stderr)}".strip()
            )
        return SandboxResult(ok=False, error=stopped, stdout=tool_stdout, stderr=stderr, backend=self.backend)

    def _error_result(
        self, exc: Exception, request: SandboxRequest, started: float, *, during: str
    ) -> SandboxResult:
        """Turn an SDK or transport failure into SandboxUnavailable or a clear error result."""
        from e2b import (
            AuthenticationException,
            RateLimitException,
            SandboxException,
            TimeoutException,
        )
        from e2b.exceptions import SandboxUnreachableException, ServiceBusyException

        if isinstance(exc, AuthenticationException):
            raise SandboxUnavailable(
                f"E2B rejected the API key while {during} ({exc}); check E2B_API_KEY"
            ) from exc
        if isinstance(exc, httpx.ConnectError | ConnectionError):
            raise SandboxUnavailable(
                f"E2B is unreachable at {self._where()} while {during}: {exc}. Check the network "
                "(or E2B_DOMAIN), or choose the local or docker sandbox"
            ) from exc
        if isinstance(exc, RateLimitException):
            message = f"E2B rate limit reached while {during}; try again later ({exc})"
        elif isinstance(exc, ServiceBusyException):
            message = f"E2B is busy while {during}; try again later ({exc})"
        elif isinstance(exc, SandboxUnreachableException):
            # The API answered but envd inside the sandbox did not: a per-sandbox failure.
            message = f"The E2B sandbox was unreachable while {during}: {exc}"
        elif isinstance(exc, TimeoutException):
            message = f"E2B timed out while {during}: {exc}"
        elif isinstance(exc, SandboxException):
            message = f"E2B failed while {during}: {exc}"
        elif isinstance(exc, httpx.HTTPError):
            message = f"E2B request failed while {during}: {type(exc).__name__}: {exc}"
        else:
            message = f"E2B sandbox error while {during}: {type(exc).__name__}: {exc}"
        return SandboxResult(
            ok=False, error=message, backend=self.backend, duration_s=time.perf_counter() - started
        )


def _tail(text: str | None, limit: int = 500) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else "…" + text[-limit:]
