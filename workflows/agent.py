"""AgentWorkflow: one per agent, long-lived. Holds only control state and runs the agent's runs one at a
time, in arrival order, each as a child RunWorkflow."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from mnemo import search_attributes as sa
    from mnemo.runtime.approvals import DENIED_ON_CANCEL, DENIED_ON_TIMEOUT
    from mnemo.schemas.runs import (
        AgentWorkflowInput,
        AgentWorkflowState,
        CancelRuns,
        DenyApprovals,
        FinishInput,
        PendingApproval,
        RunInput,
        RunResult,
        SubmitAck,
        SubmitRun,
    )
    from workflows import names


@workflow.defn(name=names.AGENT_WORKFLOW)
class AgentWorkflow:
    @workflow.init
    def __init__(self, inp: AgentWorkflowInput) -> None:
        self._agent_id = inp.agent_id
        self._queue: list[SubmitRun] = list(inp.pending)
        self._runs_processed = inp.runs_processed
        self._current: SubmitRun | None = None
        # Tool calls waiting for a human: until answered, only an approval run may go next.
        self._pending: PendingApproval | None = inp.pending_approval
        self._deny_reason: str | None = None

    @workflow.run
    async def run(self, inp: AgentWorkflowInput) -> None:
        while True:
            try:
                await workflow.wait_condition(
                    lambda: (
                        self._next() is not None
                        or self._deny_reason is not None
                        or workflow.info().is_continue_as_new_suggested()
                    ),
                    timeout=self._approval_time_left(),
                )
            except TimeoutError:
                self._deny_reason = DENIED_ON_TIMEOUT.format(timeout=_duration(self._pending_timeout()))
            if self._pending is not None and self._deny_reason is not None:
                await self._deny(self._pending, self._deny_reason)
                continue
            self._deny_reason = None
            index = self._next()
            if index is None:
                await self._continue_as_new()
                continue
            submitted = self._queue.pop(index)
            self._current = submitted
            result = await self._process(submitted)
            self._current = None
            self._runs_processed += 1
            if result is not None and result.approval_message_id:
                self._pending = PendingApproval(
                    run_id=result.run_id,
                    message_id=result.approval_message_id,
                    deadline=workflow.now() + timedelta(seconds=submitted.policy.approval_timeout_s),
                    timeout_s=submitted.policy.approval_timeout_s,
                )
            elif submitted.approval:
                self._pending = None
            if workflow.info().is_continue_as_new_suggested():
                await self._continue_as_new()

    def _next(self) -> int | None:
        """The queue position of the run to process next: the oldest, or while calls wait for a human,
        the oldest answer to them (other runs keep their place until then)."""
        if self._pending is None:
            return 0 if self._queue else None
        return next((i for i, q in enumerate(self._queue) if q.approval), None)

    def _pending_timeout(self) -> float:
        return 0.0 if self._pending is None else self._pending.timeout_s

    def _approval_time_left(self) -> float | None:
        if self._pending is None or self._deny_reason is not None:
            return None
        # A deadline already past (e.g. carried over by continue-as-new) fires on the next second.
        return max(1.0, (self._pending.deadline - workflow.now()).total_seconds())

    async def _deny(self, pending: PendingApproval, reason: str) -> None:
        await workflow.execute_local_activity(
            names.APPROVALS_DENY,
            DenyApprovals(
                agent_id=self._agent_id, run_id=pending.run_id, message_id=pending.message_id, reason=reason
            ),
            start_to_close_timeout=timedelta(seconds=30),
            summary=f"deny the calls of run {pending.run_id} waiting for approval",
        )
        self._pending = None
        self._deny_reason = None

    async def _process(self, submitted: SubmitRun) -> RunResult | None:
        run_input = RunInput(
            run_id=submitted.run_id,
            agent_id=self._agent_id,
            max_steps=submitted.max_steps,
            policy=submitted.policy,
            resume=submitted.resume,
        )
        attributes = (
            TypedSearchAttributes(
                [
                    SearchAttributePair(sa.AGENT_ID, self._agent_id),
                    SearchAttributePair(sa.RUN_ID, submitted.run_id),
                    SearchAttributePair(sa.RUN_STATUS, "running"),
                ]
            )
            if submitted.policy.search_attributes
            else None
        )
        try:
            return await workflow.execute_child_workflow(
                names.RUN_WORKFLOW,
                run_input,
                id=names.run_workflow_id(submitted.run_id),
                task_queue=workflow.info().task_queue,
                # The id says which run it is; only a resumed run gets a summary (history is per byte).
                static_summary="resumed after a failure" if submitted.resume else None,
                # With local activities, this is how soon another worker takes over from a dead one.
                task_timeout=timedelta(seconds=submitted.policy.workflow_task_timeout_s),
                search_attributes=attributes,
                result_type=RunResult,
            )
        except ChildWorkflowError as err:
            # The run records its own failure before failing; this only covers a run that could not even
            # do that (e.g. terminated from the UI), so the database never shows it running forever.
            if not isinstance(err.cause, ApplicationError):
                await self._mark_failed(submitted.run_id, "run workflow ended abnormally")
            return None

    async def _mark_failed(self, run_id: str, error: str) -> None:
        await workflow.execute_local_activity(
            names.RUNS_FINISH,
            FinishInput(run_id=run_id, agent_id=self._agent_id, stop_reason="error", steps=0, error=error),
            start_to_close_timeout=timedelta(seconds=30),
            summary=f"mark run {run_id} failed",
        )

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            AgentWorkflowInput(
                agent_id=self._agent_id,
                pending=list(self._queue),
                runs_processed=self._runs_processed,
                pending_approval=self._pending,
            )
        )

    @workflow.update(name=names.SUBMIT_UPDATE)
    async def submit(self, req: SubmitRun) -> SubmitAck:
        # Enqueue and return at once: a long-running update would hold one of the 10 in-flight slots.
        ahead = len(self._queue) + (1 if self._current is not None else 0)
        self._queue.append(req)
        return SubmitAck(run_id=req.run_id, position=ahead)

    @workflow.signal(name=names.SUBMIT_SIGNAL)
    async def submit_run(self, req: SubmitRun) -> None:
        """The cheap way in for a new run (signal-with-start): no update round trip through a worker.
        A run already queued or running is not queued twice (a retried send)."""
        current = self._current
        if any(q.run_id == req.run_id for q in self._queue) or (
            current is not None and current.run_id == req.run_id
        ):
            return
        self._queue.append(req)

    @submit.validator
    def _validate_submit(self, req: SubmitRun) -> None:
        # A resume may arrive while the failed run's workflow is still closing: it queues behind it.
        if any(q.run_id == req.run_id for q in self._queue):
            raise ApplicationError(f"run {req.run_id} is already queued", non_retryable=True)
        if not req.resume and self._current is not None and self._current.run_id == req.run_id:
            raise ApplicationError(f"run {req.run_id} is already running", non_retryable=True)

    @workflow.signal(name=names.CANCEL_SIGNAL)
    async def cancel(self, req: CancelRuns) -> None:
        wanted = set(req.run_ids) if req.run_ids is not None else None
        dropped = [q for q in self._queue if wanted is None or q.run_id in wanted]
        self._queue = [q for q in self._queue if q not in dropped]
        if self._pending is not None and (wanted is None or self._pending.run_id in wanted):
            self._deny_reason = DENIED_ON_CANCEL
        current = self._current
        if current is not None and (wanted is None or current.run_id in wanted):
            handle = workflow.get_external_workflow_handle(names.run_workflow_id(current.run_id))
            await handle.signal(names.CANCEL_SIGNAL, CancelRuns(run_ids=[current.run_id]))
        await asyncio.gather(
            *(
                workflow.execute_local_activity(
                    names.RUNS_FINISH,
                    FinishInput(run_id=q.run_id, agent_id=self._agent_id, stop_reason="cancelled", steps=0),
                    start_to_close_timeout=timedelta(seconds=30),
                    summary=f"cancel queued run {q.run_id}",
                )
                for q in dropped
            )
        )

    @workflow.query(name=names.STATE_QUERY)
    def state(self) -> AgentWorkflowState:
        return AgentWorkflowState(
            agent_id=self._agent_id,
            current_run_id=self._current.run_id if self._current else None,
            queued_run_ids=[q.run_id for q in self._queue],
            runs_processed=self._runs_processed,
            pending_approval=self._pending,
        )


def _duration(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:g} hours" if hours >= 1 else f"{seconds:g} seconds"
