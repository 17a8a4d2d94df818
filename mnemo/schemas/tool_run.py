"""Payloads of `ToolRunWorkflow` and its `tools.run` activity (one tool of an agent, run outside any
run), and the failure types the activity raises, which the workflow and the API read.

These models travel through Temporal history, so they are API: add optional fields only, never rename
or remove one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mnemo.schemas.runs import Payload, RunPolicy

# `ApplicationError.type` of a `tools.run` attempt that stopped before the tool could have begun.
NOT_STARTED = "ToolNotStarted"
# ... and of one whose agent, or the tool on it, does not exist (not retryable).
NOT_FOUND = "NotFound"


class ToolRunInput(Payload):
    agent_id: str
    tool_name: str
    args: dict[str, Any] = Field(default_factory=dict)
    policy: RunPolicy = Field(default_factory=RunPolicy)
    # Set by the workflow after an attempt that may have started the tool: why that attempt failed.
    interrupted: str | None = None


class ToolRunOutcome(Payload):
    """Letta's `ToolExecutionResult` (without `agent_state` and the sandbox fingerprint)."""

    status: Literal["success", "error"]
    func_return: Any = None
    stdout: list[str] = Field(default_factory=list)
    stderr: list[str] = Field(default_factory=list)
