"""ToolRunWorkflow: one tool of an agent, run with given arguments outside any run
(`POST /v1/agents/{agent_id}/tools/{tool_name}/run`). Id `tool-run:{uuid}`; the API starts it and
awaits its result, so the tool runs on a worker like every other tool call, never in the API process.

Retries are the workflow's, not Temporal's: each `tools.run` attempt is a single activity attempt.
A failure that says the tool never began (`ToolNotStarted`) is simply tried again; any other failure
(a dead worker's heartbeat timeout, a crash mid-call) may have come after the tool started, so the
next attempt is told so and runs the tool only if it is idempotent — at most once otherwise.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from mnemo.schemas.tool_run import NOT_STARTED, ToolRunInput, ToolRunOutcome
    from workflows import names

FIRST_BACKOFF_S = 1.0
ONE_ATTEMPT = RetryPolicy(maximum_attempts=1)


def _describe(err: BaseException) -> str:
    cause = err.cause if isinstance(err, ActivityError) and err.cause is not None else err
    if isinstance(cause, ApplicationError) and cause.type:
        return f"{cause.type}: {cause.message}"
    return f"{type(cause).__name__}: {cause}"


@workflow.defn(name=names.TOOL_RUN_WORKFLOW)
class ToolRunWorkflow:
    @workflow.run
    async def run(self, inp: ToolRunInput) -> ToolRunOutcome:
        policy = inp.policy
        attempts = max(1, policy.tool_max_attempts)
        interrupted: str | None = None
        backoff = FIRST_BACKOFF_S
        for attempt in range(1, attempts + 1):
            try:
                return await workflow.execute_activity(
                    names.TOOLS_RUN,
                    inp.model_copy(update={"interrupted": interrupted}),
                    result_type=ToolRunOutcome,
                    start_to_close_timeout=timedelta(seconds=policy.tool_start_to_close_s),
                    heartbeat_timeout=timedelta(seconds=policy.tool_heartbeat_s),
                    retry_policy=ONE_ATTEMPT,
                    summary=f"tool {inp.tool_name}",
                )
            except ActivityError as err:
                cause = err.cause
                if isinstance(cause, ApplicationError) and cause.non_retryable:
                    raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from None
                started = not (isinstance(cause, ApplicationError) and cause.type == NOT_STARTED)
                if started and interrupted is None:
                    interrupted = _describe(err)
                if attempt == attempts:
                    raise ApplicationError(
                        f"tool {inp.tool_name} could not be run after {attempts} attempts: {_describe(err)}",
                        type=cause.type if isinstance(cause, ApplicationError) else None,
                        non_retryable=True,
                    ) from None
            await workflow.sleep(timedelta(seconds=backoff))
            backoff = min(backoff * 2, policy.llm_max_interval_s)
        raise AssertionError("unreachable")  # the loop returns or raises
