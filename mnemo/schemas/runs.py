"""Payloads of the agent and run workflows and their activities.

These models travel through Temporal history, so they are API: add optional fields only, never rename
or remove one. They carry ids and small outcomes — never a transcript — so history per step stays flat.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

StopReason = Literal[
    "end_turn",
    "max_steps",
    "tool_rule",
    "requires_approval",
    "error",
    "invalid_tool_call",
    "no_tool_call",
    "invalid_llm_response",
    "llm_api_error",
    "max_tokens_exceeded",
    "context_window_overflow_in_system_prompt",
    "cancelled",
]

# Letta's table: which stop reasons leave a run completed, failed or cancelled.
COMPLETED_STOP_REASONS = frozenset({"end_turn", "max_steps", "tool_rule", "requires_approval"})


def run_status_for(stop_reason: str) -> Literal["completed", "failed", "cancelled"]:
    if stop_reason == "cancelled":
        return "cancelled"
    return "completed" if stop_reason in COMPLETED_STOP_REASONS else "failed"


class Payload(BaseModel):
    """Serialized without the fields that still have their default values: Temporal history stores
    only what differs (about a third of a step's history bytes), and reading it back fills them in."""

    @model_serializer(mode="wrap")
    def _drop_defaults(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if not isinstance(data, dict):
            return data
        for name, field in type(self).model_fields.items():
            if name in data and not field.is_required():
                if getattr(self, name) == field.get_default(call_default_factory=True):
                    del data[name]
        return data


class RunPolicy(Payload):
    """Timeouts and retry budget of a run, fixed when the run is submitted (workflows must not read
    configuration themselves)."""

    llm_start_to_close_s: float = 600.0
    llm_heartbeat_s: float = 30.0
    llm_max_attempts: int = 0  # 0 = unlimited within the retry budget
    # All attempts of one step (provider outages and database outages alike) must fit in this.
    llm_retry_budget_s: float = 900.0
    llm_initial_interval_s: float = 1.0
    llm_max_interval_s: float = 30.0
    tool_start_to_close_s: float = 300.0
    tool_heartbeat_s: float = 30.0
    tool_max_attempts: int = 5
    # Run model calls and tool calls as local activities: each step then skips a task-queue round
    # trip (~40 ms on the dev server). A dead worker is noticed by the workflow task timeout instead
    # of the heartbeat timeout, and a running call is not interrupted by a cancel (which is honoured
    # between steps either way). False = regular activities, each its own event in the history.
    local_activities: bool = False
    workflow_task_timeout_s: float = 5.0


class SubmitRun(Payload):
    """A request to process one run; the run row and its input messages are already in Postgres."""

    run_id: str
    max_steps: int = Field(default=50, ge=1, le=10_000)
    policy: RunPolicy = Field(default_factory=RunPolicy)
    resume: bool = False


class SubmitAck(Payload):
    run_id: str
    position: int  # runs ahead of this one, including the one in progress


class CancelRuns(Payload):
    run_ids: list[str] | None = None  # None = every queued and running run of the agent


class AgentWorkflowInput(Payload):
    agent_id: str
    pending: list[SubmitRun] = Field(default_factory=list)
    runs_processed: int = 0


class AgentWorkflowState(Payload):
    agent_id: str
    current_run_id: str | None
    queued_run_ids: list[str]
    runs_processed: int


class RunInput(Payload):
    run_id: str
    agent_id: str
    max_steps: int = 50
    policy: RunPolicy = Field(default_factory=RunPolicy)
    resume: bool = False


class RunResult(Payload):
    run_id: str
    stop_reason: str
    status: str
    steps: int


class ResumePoint(Payload):
    """Where a (re)started run continues: the first step whose model call or tool calls are unfinished."""

    first_step: int = 0


class StepInput(Payload):
    run_id: str
    agent_id: str
    step_index: int
    # Set when the previous step asked to continue (legacy heartbeat agents): stored as a heartbeat
    # user message before the model is called.
    heartbeat_reason: str | None = None


class ToolCallRef(Payload):
    id: str
    name: str
    terminal: bool = False
    # Legacy (memgpt) agents: the `request_heartbeat` argument the model set; None for letta_v1.
    request_heartbeat: bool | None = None


class Usage(Payload):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class StepOutcome(Payload):
    # Both derive from (run_id, step_index) (mnemo.runtime.context), so history does not carry them.
    step_id: str | None = None
    message_id: str | None = None
    has_text: bool = False
    tool_calls: list[ToolCallRef] = Field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    heartbeat_mode: bool = False  # legacy loop: continue only when a tool asks for a heartbeat
    cancelled: bool = False  # a cancel was requested before this step called the model
    compact: bool = False  # the call used more than 90% of the context window: compact before the next


class ToolInput(Payload):
    run_id: str
    agent_id: str
    step_index: int
    tool_call_id: str
    tool_name: str


class ToolOutcome(Payload):
    tool_call_id: str
    message_id: str
    ok: bool
    interrupted: bool = False  # a non-idempotent tool was cut off before its result was recorded


class FinishInput(Payload):
    run_id: str
    agent_id: str
    stop_reason: str
    steps: int
    error: str | None = None


class FinishOutcome(Payload):
    callback_url: str | None = None  # set when the run asked to be POSTed to at its end


class CallbackInput(Payload):
    run_id: str
    max_attempts: int = 8


class CompactInput(Payload):
    run_id: str | None  # None: asked for through the API, outside any run
    agent_id: str
    step_index: int
    attempt: int = 0  # compactions of one step (a context overflow may need several)
    trigger: str = "post_step_context_check"
    request_id: str | None = None  # the idempotency key when there is no run


class CompactOutcome(Payload):
    summary_message_id: str
    evicted: int
    kept: int
    already_done: bool = False
    messages_before: int | None = None
    messages_after: int | None = None
