"""Payloads of the agent and run workflows and their activities.

These models travel through Temporal history, so they are API: add optional fields only, never rename
or remove one. They carry ids and small outcomes — never a transcript — so history per step stays flat.
"""

from __future__ import annotations

import functools
from datetime import datetime
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
        for name, default in _defaults(type(self)).items():
            if name in data and getattr(self, name) == default:
                del data[name]
        return data


@functools.cache
def _defaults(cls: type[BaseModel]) -> dict[str, Any]:
    """The optional fields' defaults, computed once per class: `get_default` inspects the default
    factory's signature on every call (~60 us each), and every payload in and out of Temporal pays it."""
    return {
        name: field.get_default(call_default_factory=True)
        for name, field in cls.model_fields.items()
        if not field.is_required()
    }


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
    # How long a tool call waits for a human's approval before it is denied (a durable timer).
    approval_timeout_s: float = 86_400.0
    # Tag workflows with Mnemo's search attributes; off only where they cannot be registered (the
    # time-skipping test server).
    search_attributes: bool = True


class SubmitRun(Payload):
    """A request to process one run; the run row and its input messages are already in Postgres."""

    run_id: str
    max_steps: int = Field(default=50, ge=1, le=10_000)
    policy: RunPolicy = Field(default_factory=RunPolicy)
    resume: bool = False
    # The run answers a pending approval: it may go ahead of runs queued while the agent waited.
    approval: bool = False


class SubmitAck(Payload):
    run_id: str
    position: int  # runs ahead of this one, including the one in progress


class CancelRuns(Payload):
    run_ids: list[str] | None = None  # None = every queued and running run of the agent


class PendingApproval(Payload):
    """Tool calls of a finished run waiting for a human; denied at `deadline` if nobody answers."""

    run_id: str
    message_id: str  # the approval request message
    deadline: datetime
    timeout_s: float = 86_400.0


class AgentWorkflowInput(Payload):
    agent_id: str
    pending: list[SubmitRun] = Field(default_factory=list)
    runs_processed: int = 0
    pending_approval: PendingApproval | None = None


class AgentWorkflowState(Payload):
    agent_id: str
    current_run_id: str | None
    queued_run_ids: list[str]
    runs_processed: int
    pending_approval: PendingApproval | None = None


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
    approval_message_id: str | None = None  # set when the run stopped with requires_approval


class ApprovalCall(Payload):
    """A pending tool call this run answers (the decision itself is in the run's input message)."""

    tool_call_id: str
    tool_name: str
    message_id: str  # the approval request message holding the call


class DenyApprovals(Payload):
    """Deny what is still pending in an approval request (timeout or cancel)."""

    agent_id: str
    run_id: str
    message_id: str
    reason: str


class ResumePoint(Payload):
    """Where a (re)started run continues: the first step whose model call or tool calls are unfinished."""

    first_step: int = 0
    # Only for agents with rules that steer the loop (run_first, children, parents, conditional,
    # max count, required before exit), so other runs' history stays as small as before.
    tool_rules: list[dict[str, Any]] = Field(default_factory=list)
    tool_names: list[str] = Field(default_factory=list)
    # A resumed run's tools already run (the rules' history) and the last one's output.
    tool_history: list[str] = Field(default_factory=list)
    last_output: str | None = None
    approvals: list[ApprovalCall] = Field(default_factory=list)


class StepInput(Payload):
    run_id: str
    agent_id: str
    step_index: int
    # Set when the previous step asked to continue (legacy heartbeat agents): stored as a heartbeat
    # user message before the model is called.
    heartbeat_reason: str | None = None
    # Set by tool rules: the only tools offered to the model (None = all), and whether it must call
    # one ("required") or a named one.
    allowed_tools: list[str] | None = None
    tool_choice: str | None = None


class ToolCallRef(Payload):
    id: str
    name: str
    terminal: bool = False
    # Legacy (memgpt) agents: the `request_heartbeat` argument the model set; None for letta_v1.
    request_heartbeat: bool | None = None
    continues: bool = False  # a continue_loop rule: the loop goes on after this call
    requires_approval: bool = False  # the call waits for a human (rule, tool default or client tool)


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
    # Not run: the call broke a tool rule; this is the error the model gets back.
    rejected: str | None = None
    # The call waited for approval in this message; this run's input says what the human decided.
    approval_of: str | None = None
    report_output: bool = False  # return the tool's output (a conditional rule reads it)
    # Arguments a tool rule fixes for this call (run_first args, or a child_arg_node right after the
    # parent): they override the model's, and the call is refused if they do not fit the tool's schema.
    prefilled_args: dict[str, Any] | None = None
    prefill_source: str | None = None  # which rule, for the error text (Letta's provenance)


class ToolOutcome(Payload):
    tool_call_id: str
    message_id: str
    ok: bool
    interrupted: bool = False  # a non-idempotent tool was cut off before its result was recorded
    output: str | None = None  # only when asked for (report_output)
    prefill_error: bool = False  # not run: the rule's prefilled arguments did not fit (invalid_tool_call)


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
