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
    from mnemo.schemas.runs import (
        AgentWorkflowInput,
        AgentWorkflowState,
        CancelRuns,
        FinishInput,
        RunInput,
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

    @workflow.run
    async def run(self, inp: AgentWorkflowInput) -> None:
        while True:
            await workflow.wait_condition(
                lambda: bool(self._queue) or workflow.info().is_continue_as_new_suggested()
            )
            if not self._queue:
                await self._continue_as_new()
            submitted = self._queue.pop(0)
            self._current = submitted
            await self._process(submitted)
            self._current = None
            self._runs_processed += 1
            if workflow.info().is_continue_as_new_suggested():
                await self._continue_as_new()

    async def _process(self, submitted: SubmitRun) -> None:
        run_input = RunInput(
            run_id=submitted.run_id,
            agent_id=self._agent_id,
            max_steps=submitted.max_steps,
            policy=submitted.policy,
            resume=submitted.resume,
        )
        try:
            await workflow.execute_child_workflow(
                names.RUN_WORKFLOW,
                run_input,
                id=names.run_workflow_id(submitted.run_id),
                task_queue=workflow.info().task_queue,
                # The id says which run it is; only a resumed run gets a summary (history is per byte).
                static_summary="resumed after a failure" if submitted.resume else None,
                # With local activities, this is how soon another worker takes over from a dead one.
                task_timeout=timedelta(seconds=submitted.policy.workflow_task_timeout_s),
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(sa.AGENT_ID, self._agent_id),
                        SearchAttributePair(sa.RUN_ID, submitted.run_id),
                        SearchAttributePair(sa.RUN_STATUS, "running"),
                    ]
                ),
            )
        except ChildWorkflowError as err:
            # The run records its own failure before failing; this only covers a run that could not even
            # do that (e.g. terminated from the UI), so the database never shows it running forever.
            if not isinstance(err.cause, ApplicationError):
                await self._mark_failed(submitted.run_id, "run workflow ended abnormally")

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
                agent_id=self._agent_id, pending=list(self._queue), runs_processed=self._runs_processed
            )
        )

    @workflow.update(name=names.SUBMIT_UPDATE)
    async def submit(self, req: SubmitRun) -> SubmitAck:
        # Enqueue and return at once: a long-running update would hold one of the 10 in-flight slots.
        ahead = len(self._queue) + (1 if self._current is not None else 0)
        self._queue.append(req)
        return SubmitAck(run_id=req.run_id, position=ahead)

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
        )
