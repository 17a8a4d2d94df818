"""One interface for running custom tool code, whatever the backend (local, docker, e2b).

A runner gets the tool's Python source, the function name and the model's arguments; it returns the
function's result as JSON (never pickle), the captured stdout/stderr, and an error if the tool raised
or the sandbox stopped it. Runners never raise for a tool's own failure: they report it, so the model
sees it. They raise `SandboxUnavailable` only when the backend itself cannot be used (no bubblewrap,
no Docker daemon, no E2B key), with a message that says what to do.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

Backend = Literal["local", "docker", "e2b"]


class SandboxUnavailable(RuntimeError):
    """The chosen backend cannot run here; the message says why and what to do."""


class SandboxLimits(BaseModel):
    timeout_s: float = 180.0  # Letta's tool_sandbox_timeout
    memory_mb: int = 512
    cpu_s: int = 60
    max_processes: int = 64
    max_output_bytes: int = 1_000_000


class SandboxRequest(BaseModel):
    source_code: str
    function_name: str
    args: dict[str, Any] = Field(default_factory=dict)
    # Exactly what the tool may see: the agent's secrets, then LETTA_AGENT_ID and LETTA_TOOL_ID.
    env: dict[str, str] = Field(default_factory=dict)
    pip_requirements: list[str] = Field(default_factory=list)
    limits: SandboxLimits = Field(default_factory=SandboxLimits)


class SandboxResult(BaseModel):
    ok: bool
    value: Any = None  # the function's return value, decoded from JSON (str() of it if not JSON-able)
    error: str | None = (
        None  # e.g. "ZeroDivisionError: division by zero" or "Executing tool x timed out after 180 seconds."
    )
    stdout: str = ""
    stderr: str = ""
    backend: Backend
    duration_s: float = 0.0


class SandboxRunner(Protocol):
    backend: Backend

    async def run(self, request: SandboxRequest) -> SandboxResult: ...
