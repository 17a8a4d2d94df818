"""Starting, resuming, cancelling and awaiting runs: how the API (and the CLI) drive the agent workflows."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import func as sa_func
from sqlalchemy import update as sa_update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from api.db_outage import CONNECTION_ERRORS, OutageClock
from api.run_waiter import RunWaiter
from mnemo import search_attributes as sa
from mnemo.runtime.context import load_agent
from mnemo.runtime.runs import TERMINAL_STATUSES, create_run
from mnemo.schemas.runs import AgentWorkflowInput, CancelRuns, RunPolicy, SubmitAck, SubmitRun
from mnemo.store.db import Database
from mnemo.store.tables import RunRow
from workflows import names


class InputPlan(BaseModel):
    """What a request stores as a run's input: its messages, extra request config, and whether it
    answers calls waiting for approval (it then goes ahead of queued runs)."""

    messages: list[dict[str, Any]]
    request_config: dict[str, Any] = Field(default_factory=dict)
    approval: bool = False


T = TypeVar("T")
DEFAULT_OUTAGE_GRACE_S = 120.0


async def _read_nothing(_s: AsyncSession, _run: RunRow) -> None:
    return None


# Decides a run's input inside the transaction that records it.
Planner = Callable[[AsyncSession], Awaitable[InputPlan]]


class RunService:
    def __init__(
        self,
        client: Client,
        db: Database,
        task_queue: str,
        policy: RunPolicy | None = None,
        *,
        outage_grace_s: float = DEFAULT_OUTAGE_GRACE_S,
    ) -> None:
        self.client = client
        self.db = db
        self.task_queue = task_queue
        self.policy = policy or RunPolicy()
        # How long a waiter rides out an unreachable database (api/db_outage.py).
        self.outage_grace_s = outage_grace_s
        self.waiter = RunWaiter(db.url)

    async def start(self) -> None:
        await self.waiter.start()

    async def close(self) -> None:
        await self.waiter.stop()

    async def _submit(self, agent_id: str, req: SubmitRun) -> None:
        """Hand a run to its agent's workflow, starting the workflow if needed. New runs go by
        signal-with-start (one server call, no worker round trip); a resume goes by update, whose
        validator refuses a run that is still queued or running."""
        workflow: dict[str, Any] = {
            "id": names.agent_workflow_id(agent_id),
            "task_queue": self.task_queue,
            "id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING,
            "search_attributes": self._agent_attributes(agent_id),
            "static_summary": f"agent {agent_id}",
        }
        first = AgentWorkflowInput(agent_id=agent_id)
        if not req.resume:
            await self.client.start_workflow(
                names.AGENT_WORKFLOW,
                first,
                start_signal=names.SUBMIT_SIGNAL,
                start_signal_args=[req],
                **workflow,
            )
            return
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            names.AGENT_WORKFLOW, first, **workflow
        )
        await self.client.execute_update_with_start_workflow(
            names.SUBMIT_UPDATE, req, start_workflow_operation=start, result_type=SubmitAck
        )

    def _agent_attributes(self, agent_id: str) -> TypedSearchAttributes | None:
        if not self.policy.search_attributes:
            return None
        return TypedSearchAttributes([SearchAttributePair(sa.AGENT_ID, agent_id)])

    async def send(
        self,
        agent_id: str,
        messages: list[dict[str, Any]],
        *,
        max_steps: int = 50,
        request_config: dict[str, Any] | None = None,
        background: bool = False,
        callback_url: str | None = None,
        approval: bool = False,
    ) -> RunRow:
        """Persist the run and its input, then hand it to the agent's workflow. Returns the run row.
        `approval`: the input answers calls waiting for approval (it goes ahead of queued runs)."""

        async def fixed(_s: AsyncSession) -> InputPlan:
            return InputPlan(messages=messages, approval=approval)

        return await self.send_planned(
            agent_id,
            fixed,
            max_steps=max_steps,
            request_config=request_config,
            background=background,
            callback_url=callback_url,
        )

    async def send_planned(
        self,
        agent_id: str,
        plan: Planner,
        *,
        max_steps: int = 50,
        request_config: dict[str, Any] | None = None,
        background: bool = False,
        callback_url: str | None = None,
    ) -> RunRow:
        """`send`, with the input decided by `plan` in the transaction that records the run: the checks
        it makes (what is pending, what is allowed) and the insert see one state, and cost no session
        of their own. `plan` raises to refuse the request; nothing is recorded then."""
        async with self.db.transaction() as s:
            agent = await load_agent(s, agent_id)
            planned = await plan(s)
            run = await create_run(
                s,
                agent,
                planned.messages,
                max_steps=max_steps,
                request_config={**(request_config or {}), **planned.request_config},
                background=background,
                callback_url=callback_url,
            )
        try:
            await self._submit(
                agent_id,
                SubmitRun(run_id=run.id, max_steps=max_steps, policy=self.policy, approval=planned.approval),
            )
        except Exception:
            await self._set_status(run.id, "failed", "error")
            raise
        return run

    async def resume(self, run_id: str) -> RunRow:
        """Continue a failed (or interrupted) run from its last persisted step, in its agent's queue."""
        async with self.db.session() as s:
            run = await s.get(RunRow, run_id)
        if run is None:
            raise LookupError(f"run {run_id} not found")
        if run.status == "completed":
            raise ValueError(
                f"run {run_id} already completed ({run.stop_reason}); there is nothing to resume"
            )
        if run.status == "cancelled":
            raise ValueError(f"run {run_id} was cancelled; send a new message instead of resuming it")
        if run.status in ("created", "running") and await self._workflow_open(run_id):
            raise ValueError(
                f"run {run_id} is still {run.status}; only a failed or interrupted run can be resumed"
            )
        previous = (run.status, run.stop_reason)
        await self._set_status(run_id, "created", None)  # waiters now wait for the resumed run's end
        try:
            await self._submit(
                run.agent_id,
                SubmitRun(run_id=run_id, max_steps=run.max_steps or 50, policy=self.policy, resume=True),
            )
        except Exception:
            await self._set_status(run_id, *previous)
            raise
        return run

    async def _set_status(self, run_id: str, status: str, stop_reason: str | None) -> None:
        async with self.db.transaction() as s:
            row = await s.get(RunRow, run_id)
            if row is not None:
                row.status, row.stop_reason = status, stop_reason
                s.add(row)

    async def _workflow_open(self, run_id: str) -> bool:
        from temporalio.client import WorkflowExecutionStatus

        try:
            desc = await self.client.get_workflow_handle(names.run_workflow_id(run_id)).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False  # still queued behind another run, or never started
            raise
        return desc.status == WorkflowExecutionStatus.RUNNING

    async def cancel(self, agent_id: str, run_ids: list[str] | None = None) -> None:
        """Cancel queued and running runs (all of the agent's when `run_ids` is None). A running run
        stops before its next step: the flag in Postgres is seen at once, the signal drops queued runs."""
        async with self.db.transaction() as s:
            stmt = (
                sa_update(RunRow)
                .where(col(RunRow.agent_id) == agent_id, col(RunRow.status).in_(("created", "running")))
                .values(cancel_requested_at=sa_func.now())
            )
            if run_ids is not None:
                stmt = stmt.where(col(RunRow.id).in_(run_ids))
            await s.execute(stmt)
        handle = self.client.get_workflow_handle(names.agent_workflow_id(agent_id))
        try:
            await handle.signal(names.CANCEL_SIGNAL, CancelRuns(run_ids=run_ids))
        except RPCError as err:
            # No agent workflow to tell, or it is between two executions (continue-as-new): the flag
            # above still stops every one of these runs at its next step, queued ones at their first.
            if err.status != RPCStatusCode.NOT_FOUND:
                raise

    async def wait(self, run_id: str, timeout: float | None = None) -> RunRow:
        """Wait until the run is completed, failed or cancelled, and return its row."""
        run, _ = await self.wait_and_read(run_id, _read_nothing, timeout)
        return run

    async def wait_and_read(
        self, run_id: str, read: Callable[[AsyncSession, RunRow], Awaitable[T]], timeout: float | None = None
    ) -> tuple[RunRow, T]:
        """`wait`, then `read` what the run left (its messages, say) in the session that saw it end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        outage = OutageClock(run_id, self.outage_grace_s)
        status = "unknown"
        with self.waiter.subscribe(run_id) as event:
            while True:
                try:
                    async with self.db.session() as s:
                        run = await s.get(RunRow, run_id)
                        if run is None:
                            raise LookupError(f"run {run_id} not found")
                        if run.status in TERMINAL_STATUSES:
                            return run, await read(s, run)
                        status = run.status
                except CONNECTION_ERRORS as exc:
                    outage.failed(exc)  # the run goes on without us: read again at the next wake-up
                else:
                    outage.recovered()
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"run {run_id} is still {status} after {timeout}s")
                await self.waiter.wait_event(event)
