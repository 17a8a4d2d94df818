"""Choosing a sandbox for a custom tool: the tool's own `metadata_.sandbox`, then the agent's
`metadata.sandbox`, then the deployment's MNEMO_SANDBOX (default `local`). One runner per backend per
process, created on first use."""

from __future__ import annotations

from typing import Any

from mnemo.config import Settings
from mnemo.sandbox.base import Backend, SandboxRunner

BACKENDS: tuple[Backend, ...] = ("local", "docker", "e2b")
_runners: dict[str, SandboxRunner] = {}


def backend_for(
    tool_metadata: dict[str, Any] | None, agent_metadata: dict[str, Any] | None, settings: Settings
) -> Backend:
    for source in (tool_metadata or {}, agent_metadata or {}):
        chosen = source.get("sandbox")
        if chosen:
            if chosen not in BACKENDS:
                raise ValueError(f"unknown sandbox {chosen!r}: use one of {', '.join(BACKENDS)}")
            return chosen  # type: ignore[no-any-return]
    return settings.sandbox


def runner(backend: Backend, settings: Settings) -> SandboxRunner:
    existing = _runners.get(backend)
    if existing is not None:
        return existing
    created: SandboxRunner
    if backend == "local":
        from mnemo.sandbox.local import LocalSandbox

        created = LocalSandbox()
    elif backend == "docker":
        from mnemo.sandbox.docker import DockerSandbox

        created = DockerSandbox(settings.docker_host)
    else:
        from mnemo.sandbox.e2b import E2BSandbox

        created = E2BSandbox(settings.e2b_api_key.get_secret_value() if settings.e2b_api_key else None)
    _runners[backend] = created
    return created
