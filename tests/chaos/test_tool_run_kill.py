"""SIGKILL the worker while a `ToolRunWorkflow` (POST /v1/agents/{id}/tools/{name}/run) runs a
side-effecting tool: the effect happens once, and the caller is told the tool was interrupted.

The workflow is started with the Temporal client, as the API starts it, but with the chaos policy's
3 s heartbeat timeout (the API's is 30 s), so the dead worker's attempt times out within seconds.
"""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import select

from mnemo.runtime.tools import INTERRUPTED
from mnemo.schemas.tool_run import ToolRunInput, ToolRunOutcome
from mnemo.store.tables import ToolRow
from tests.chaos.harness import CHAOS_POLICY, Chaos
from tests.chaos.worker_proc import TOOL_NAME
from workflows import names

pytestmark = pytest.mark.chaos


async def test_worker_killed_during_a_direct_tool_run(chaos: Chaos) -> None:
    chaos.workers.prepare()  # the replacement warms up while the first worker runs
    await chaos.add_counting_tool()
    async with chaos.db.session() as s:
        tool = (await s.exec(select(ToolRow).where(ToolRow.name == TOOL_NAME))).one()
    agent = await chaos.create_agent(memory_blocks=[], tool_ids=[tool.id])

    handle = await chaos.client.start_workflow(
        names.TOOL_RUN_WORKFLOW,
        ToolRunInput(agent_id=agent.id, tool_name=TOOL_NAME, args={"label": "once"}, policy=CHAOS_POLICY),
        id=names.tool_run_workflow_id(str(uuid.uuid4())),
        task_queue=chaos.task_queue,
        result_type=ToolRunOutcome,
    )

    async def side_effect_happened() -> bool:
        return len(await chaos.counter_lines()) == 1

    await chaos.until(side_effect_happened, "the tool's side effect")
    killed = chaos.workers.kill()  # the tool now sleeps: it has started and not returned
    assert killed.returncode == -9
    chaos.workers.start()

    outcome = await handle.result()
    assert outcome.status == "error"
    assert isinstance(outcome.func_return, str) and outcome.func_return.startswith(INTERRUPTED)
    assert "TimeoutError" in outcome.func_return  # why the first attempt is presumed to have started
    lines = await chaos.counter_lines()
    assert len(lines) == 1 and lines[0].startswith("once "), lines  # not run again by the new worker
