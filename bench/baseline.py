"""Temporal's own floor on this machine: workflows with no-op activities on the same dev server, run by
an in-process worker with the same sandbox settings as Mnemo's. A Mnemo turn cannot be faster than the
orchestration it is made of; these say how much of a turn that is.

- `one_activity`: a workflow that runs one activity (the smallest durable step).
- `run_shape`: RunWorkflow's 1-step shape: local activity, activity, local activity.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench.noop")
async def noop(value: str) -> str:
    return value


@workflow.defn(name="BenchOneActivity")
class OneActivity:
    @workflow.run
    async def run(self, value: str) -> str:
        return str(
            await workflow.execute_activity("bench.noop", value, start_to_close_timeout=timedelta(seconds=30))
        )


@workflow.defn(name="BenchRunShape")
class RunShape:
    @workflow.run
    async def run(self, value: str) -> str:
        short = timedelta(seconds=30)
        await workflow.execute_local_activity("bench.noop", value, start_to_close_timeout=short)
        out = await workflow.execute_activity("bench.noop", value, start_to_close_timeout=short)
        await workflow.execute_local_activity("bench.noop", value, start_to_close_timeout=short)
        return str(out)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"
