"""RunWorkflow: one per run (one user request). The page a user opens in the Temporal UI to see what a
run did: each model call and each tool call is a named activity with a summary."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from mnemo import search_attributes as sa
    from mnemo.runtime.context import assistant_message_id
    from mnemo.schemas.runs import (
        CallbackInput,
        CancelRuns,
        CompactInput,
        CompactOutcome,
        FinishInput,
        FinishOutcome,
        ResumePoint,
        RunInput,
        RunPolicy,
        RunResult,
        StepInput,
        StepOutcome,
        ToolInput,
        ToolOutcome,
        run_status_for,
    )
    from mnemo.tools.solver import NON_USER_PREFIX, Prefill, RuleSolver, required_reason
    from workflows import names

HEARTBEAT_REASON = (
    "[This is an automated system message hidden from the user] "
    "Function called using request_heartbeat=true, returning control"
)
SHORT = timedelta(seconds=30)
DATABASE_UNAVAILABLE = "DatabaseUnavailable"
# A regular activity's failure arrives as ActivityError; a local activity's final failure can arrive as
# the activity's own ApplicationError.
ACTIVITY_FAILURES = (ActivityError, ApplicationError)
CONTEXT_OVERFLOW = "ContextWindowExceeded"
SYSTEM_PROMPT_TOO_LARGE = "SystemPromptTooLarge"
MAX_OVERFLOW_COMPACTIONS = 3  # Letta's max_summarizer_retries


@workflow.defn(name=names.RUN_WORKFLOW)
class RunWorkflow:
    def __init__(self) -> None:
        self._cancelled = False
        self._solver = RuleSolver([], [])
        self._approval_message: str | None = None

    @workflow.signal(name=names.CANCEL_SIGNAL)
    async def cancel(self, req: CancelRuns) -> None:
        self._cancelled = True

    @workflow.run
    async def run(self, inp: RunInput) -> RunResult:
        start: ResumePoint = await workflow.execute_local_activity(
            names.RUNS_START,
            inp,
            result_type=ResumePoint,
            start_to_close_timeout=SHORT,
            summary="resume run" if inp.resume else "start run",
        )
        self._solver = RuleSolver(start.tool_rules, start.tool_names, start.tool_history, start.last_output)
        stopped = await self._answer_approvals(inp, start) if start.first_step == 0 else None
        stop_reason, error, steps = stopped or await self._loop(inp, start.first_step)
        finished: FinishOutcome = await workflow.execute_local_activity(
            names.RUNS_FINISH,
            FinishInput(
                run_id=inp.run_id, agent_id=inp.agent_id, stop_reason=stop_reason, steps=steps, error=error
            ),
            result_type=FinishOutcome,
            start_to_close_timeout=SHORT,
            summary=f"finish: {stop_reason}",
        )
        status = run_status_for(stop_reason)
        if inp.policy.search_attributes:
            workflow.upsert_search_attributes([sa.RUN_STATUS.value_set(status)])
        if finished.callback_url:
            callback = CallbackInput(run_id=inp.run_id)
            await workflow.execute_activity(
                names.RUNS_CALLBACK,
                callback,
                start_to_close_timeout=timedelta(seconds=15),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=1),
                    maximum_interval=timedelta(minutes=1),
                    maximum_attempts=callback.max_attempts,
                ),
                summary=f"POST callback {finished.callback_url}",
            )
        if status == "failed":
            # Failing the workflow makes failed runs stand out in the UI; the run is already recorded.
            raise ApplicationError(f"run {inp.run_id} stopped: {stop_reason}: {error}", non_retryable=True)
        return RunResult(
            run_id=inp.run_id,
            stop_reason=stop_reason,
            status=status,
            steps=steps,
            approval_message_id=self._approval_message if stop_reason == "requires_approval" else None,
        )

    async def _answer_approvals(
        self, inp: RunInput, start: ResumePoint
    ) -> tuple[str, str | None, int] | None:
        """Carry out a human's answer to pending calls (run, deny, or take the client's return)."""
        prefills = self._solver.prefills()  # Letta computes them once, before the approved calls run
        try:
            for call in start.approvals:
                done = await self._tool(
                    inp,
                    0,
                    call.tool_call_id,
                    call.tool_name,
                    approval_of=call.message_id,
                    report_output=self._solver.reports_output(call.tool_name),
                    prefill=prefills.get(call.tool_name),
                )
                if done.prefill_error and len(start.approvals) == 1:
                    return "invalid_tool_call", None, 0
                if not done.prefill_error:  # a refused call is not in the rules' history (Letta)
                    self._solver.record(call.tool_name, done.output)
        except ACTIVITY_FAILURES as err:
            return "error", _cause(err), 0
        return None

    async def _loop(self, inp: RunInput, first_step: int) -> tuple[str, str | None, int]:
        heartbeat: str | None = None
        step = first_step
        overflows = 0  # compactions forced by a context overflow in this step
        while step < inp.max_steps:
            if self._cancelled:
                return "cancelled", None, step
            workflow.set_current_details(f"step {step + 1} of at most {inp.max_steps}")
            allowed = self._solver.allowed()
            try:
                outcome = await self._llm_step(inp, step, heartbeat, allowed)
            except ACTIVITY_FAILURES as err:
                cause = _cause(err)
                if cause.startswith(CONTEXT_OVERFLOW) and overflows < MAX_OVERFLOW_COMPACTIONS:
                    overflows += 1
                    stopped = await self._compact(inp, step, overflows, "context_window_exceeded")
                    if stopped is not None:
                        return stopped
                    continue  # the same step, on the compacted context
                # Only a model provider's failure is an llm_api_error; ours (e.g. the database) is not.
                return ("error" if cause.startswith(DATABASE_UNAVAILABLE) else "llm_api_error"), cause, step
            if outcome.cancelled:
                return "cancelled", None, step
            overflows = 0
            try:
                violated, waiting, invalid = await self._run_calls(inp, step, outcome, allowed)
            except ACTIVITY_FAILURES as err:
                return "error", _cause(err), step + 1
            if waiting:
                self._approval_message = assistant_message_id(inp.run_id, step)
                return "requires_approval", None, step + 1
            if outcome.compact:
                stopped = await self._compact(inp, step, 0, "post_step_context_check")
                if stopped is not None:
                    return stopped
            if invalid and len(outcome.tool_calls) == 1:  # Letta: a refused prefill ends the step's loop
                return "invalid_tool_call", None, step + 1
            decided = _decide(outcome, last=step + 1 >= inp.max_steps, solver=self._solver, violated=violated)
            if isinstance(decided, tuple):
                return decided[0], decided[1], step + 1
            heartbeat = decided
            step += 1
        return "max_steps", None, step

    async def _compact(
        self, inp: RunInput, step: int, attempt: int, trigger: str
    ) -> tuple[str, str | None, int] | None:
        """Compact the context; a stop reason if that failed (None: carry on)."""
        policy = inp.policy
        arg = CompactInput(
            run_id=inp.run_id, agent_id=inp.agent_id, step_index=step, attempt=attempt, trigger=trigger
        )
        try:
            await workflow.execute_activity(
                names.MEMORY_COMPACT,
                arg,
                result_type=CompactOutcome,
                start_to_close_timeout=timedelta(seconds=policy.llm_start_to_close_s),
                schedule_to_close_timeout=timedelta(seconds=policy.llm_retry_budget_s),
                heartbeat_timeout=timedelta(seconds=policy.llm_heartbeat_s),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=policy.llm_initial_interval_s),
                    maximum_interval=timedelta(seconds=policy.llm_max_interval_s),
                    maximum_attempts=policy.llm_max_attempts,
                ),
                summary=f"step {step + 1}: compact the context ({trigger})",
            )
        except ACTIVITY_FAILURES as err:
            cause = _cause(err)
            if cause.startswith(SYSTEM_PROMPT_TOO_LARGE):
                return "context_window_overflow_in_system_prompt", cause, step
            return "error", cause, step
        return None

    async def _run_calls(
        self, inp: RunInput, step: int, outcome: StepOutcome, allowed: list[str] | None
    ) -> tuple[bool, bool, bool]:
        """Run the step's tool calls, skipping those that wait for approval; (a rule was broken, some
        call waits for a human, a rule's prefilled arguments did not fit their tool)."""
        prefills = self._solver.prefills()  # as the model saw them: nothing has run in this step yet
        violated = waiting = invalid = False
        for call in outcome.tool_calls:
            if allowed is not None and call.name not in allowed:
                violated = True
                await self._tool(
                    inp, step, call.id, call.name, rejected=self._solver.violation(call.name, allowed)
                )
            elif call.requires_approval:
                waiting = True
            else:
                done = await self._tool(
                    inp,
                    step,
                    call.id,
                    call.name,
                    report_output=self._solver.reports_output(call.name),
                    prefill=prefills.get(call.name),
                )
                if done.prefill_error:
                    invalid = True  # not run, so not in the rules' history (Letta)
                else:
                    self._solver.record(call.name, done.output)
        return violated, waiting, invalid

    async def _llm_step(
        self, inp: RunInput, step: int, heartbeat: str | None, allowed: list[str] | None = None
    ) -> StepOutcome:
        policy = inp.policy
        arg = StepInput(
            run_id=inp.run_id,
            agent_id=inp.agent_id,
            step_index=step,
            heartbeat_reason=heartbeat,
            allowed_tools=allowed,
            tool_choice=self._solver.tool_choice(allowed),
        )
        retry = RetryPolicy(
            initial_interval=timedelta(seconds=policy.llm_initial_interval_s),
            maximum_interval=timedelta(seconds=policy.llm_max_interval_s),
            maximum_attempts=policy.llm_max_attempts,
        )
        return await _run_activity(
            policy,
            names.LLM_STEP,
            arg,
            StepOutcome,
            start_to_close=policy.llm_start_to_close_s,
            heartbeat=policy.llm_heartbeat_s,
            retry=retry,
            summary=f"step {step + 1}: call the model",
            schedule_to_close=policy.llm_retry_budget_s,
        )

    async def _tool(
        self,
        inp: RunInput,
        step: int,
        call_id: str,
        name: str,
        *,
        rejected: str | None = None,
        approval_of: str | None = None,
        report_output: bool = False,
        prefill: Prefill | None = None,
    ) -> ToolOutcome:
        policy = inp.policy
        arg = ToolInput(
            run_id=inp.run_id,
            agent_id=inp.agent_id,
            step_index=step,
            tool_call_id=call_id,
            tool_name=name,
            rejected=rejected,
            approval_of=approval_of,
            report_output=report_output,
            prefilled_args=prefill.args if prefill else None,
            prefill_source=prefill.source if prefill else None,
        )
        summary = f"step {step + 1}: tool {name}" + (" (arguments from a tool rule)" if prefill else "")
        if rejected is not None:
            summary = f"step {step + 1}: refuse {name} (tool rule)"
        elif approval_of is not None:
            summary = f"answer approval of {name}"
        return await _run_activity(
            policy,
            names.TOOLS_EXECUTE,
            arg,
            ToolOutcome,
            start_to_close=policy.tool_start_to_close_s,
            heartbeat=policy.tool_heartbeat_s,
            retry=RetryPolicy(maximum_attempts=policy.tool_max_attempts),
            summary=summary,
        )


OutcomeT = TypeVar("OutcomeT")


async def _run_activity(
    policy: RunPolicy,
    name: str,
    arg: Any,
    result_type: type[OutcomeT],
    *,
    start_to_close: float,
    heartbeat: float,
    retry: RetryPolicy,
    summary: str,
    schedule_to_close: float | None = None,
) -> OutcomeT:
    """A step's activity, local (no task queue round trip) or regular as the run's policy says. Local
    activities have no heartbeat timeout: their liveness is the workflow task's."""
    budget = None if schedule_to_close is None else timedelta(seconds=schedule_to_close)
    if policy.local_activities:
        return await workflow.execute_local_activity(
            name,
            arg,
            result_type=result_type,
            start_to_close_timeout=timedelta(seconds=start_to_close),
            schedule_to_close_timeout=budget,
            retry_policy=retry,
            summary=summary,
        )
    return await workflow.execute_activity(
        name,
        arg,
        result_type=result_type,
        start_to_close_timeout=timedelta(seconds=start_to_close),
        schedule_to_close_timeout=budget,
        heartbeat_timeout=timedelta(seconds=heartbeat),
        retry_policy=retry,
        summary=summary,
    )


def _cause(err: ActivityError | ApplicationError) -> str:
    """`"<error type>: <message>"` of the activity's last failure (the type is e.g. llm_rate_limit)."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError):
        return f"{cause.type}: {cause.message}" if cause.type else cause.message
    return str(cause or err)


def _decide(
    outcome: StepOutcome, *, last: bool, solver: RuleSolver | None = None, violated: bool = False
) -> tuple[str, str | None] | str | None:
    """After a step: `(stop_reason, error)` to end the run, else the heartbeat reason for the next step
    (None when the loop continues without one)."""
    solver = solver or RuleSolver([], [])
    missing = solver.uncalled_required()
    if not outcome.tool_calls:
        if outcome.heartbeat_mode:
            return "no_tool_call", "No tool calls found in response, model must make a tool call"
        if outcome.finish_reason == "length":
            return "max_tokens_exceeded", None
        if missing and not last:  # required_before_exit: the turn cannot end yet
            return required_reason(missing)
        return "end_turn", None
    terminal = any(call.terminal for call in outcome.tool_calls)
    heartbeat = None
    if outcome.heartbeat_mode:
        # Letta's V2 loop: continue when the model asked for a heartbeat (a failed call does not
        # chain), or a rule says so; a terminal tool ends the turn, and says `tool_rule` if a heartbeat
        # was asked for.
        wants = any(call.request_heartbeat for call in outcome.tool_calls)
        if terminal and not missing:
            return ("tool_rule" if wants else "end_turn"), None
        forced = _v2_reason(outcome, solver, violated, missing)
        if not wants and forced is None:
            return "end_turn", None
        heartbeat = HEARTBEAT_REASON if wants else forced
    elif terminal:
        if not missing:
            return "tool_rule", None
        heartbeat = required_reason(missing)
    if last:
        return "max_steps", None
    return heartbeat


def _v2_reason(outcome: StepOutcome, solver: RuleSolver, violated: bool, missing: list[str]) -> str | None:
    """Why a rule keeps a V2 loop going without a heartbeat request (Letta's reasons), or None."""
    if violated:
        return NON_USER_PREFIX + "Continuing: tool rule violation."
    if any(solver.has_children(call.name) for call in outcome.tool_calls):
        return NON_USER_PREFIX + "Continuing: child tool rule."
    if any(call.continues for call in outcome.tool_calls):
        return NON_USER_PREFIX + "Continuing: continue tool rule."
    if missing:
        return NON_USER_PREFIX + f"Continuing, user expects these tools: {missing} to be called still."
    return None
