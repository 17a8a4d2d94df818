"""Runs that exercise every kind of command our workflows emit, and their Temporal histories.

Used twice: `test_replay.py` records them fresh and replays them (the workflows are deterministic),
and replays the histories stored in tests/fixtures/histories/ (today's code still replays runs that
an earlier version started: a workflow change that would break runs in flight fails there).

Re-record the stored histories only for a deliberate, versioned workflow change:
`MNEMO_RECORD_HISTORIES=1 .venv/bin/python -m pytest tests/replay -k record`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from api.approvals import ApprovalCreate, plan_input
from mnemo.fakellm import Reply
from mnemo.ids import new_id
from mnemo.schemas.tool_run import ToolRunInput, ToolRunOutcome
from tests.fixtures.mnemo import Mnemo
from worker import registry
from worker.main import workflow_runner
from workflows import names

HISTORIES = Path(__file__).resolve().parent.parent / "fixtures" / "histories"
PERSONA = {"label": "persona", "value": "I am Sam."}
HUMAN = {"label": "human", "value": "Name: unknown"}

# What one scenario leaves: the ids of the workflows whose histories tell it.
Scenario = Callable[[Mnemo], Awaitable[list[str]]]


async def text_turn(m: Mnemo) -> list[str]:
    agent = await m.create_agent(memory_blocks=[PERSONA, HUMAN])
    m.fake.script(Reply.text("Hello!"))
    run = await m.send(agent.id, "hi")
    assert run.stop_reason == "end_turn"
    return [names.run_workflow_id(run.id), names.agent_workflow_id(agent.id)]


async def tool_turn(m: Mnemo) -> list[str]:
    """A memory edit, then the reply: two model calls and a tool call."""
    agent = await m.create_agent(memory_blocks=[PERSONA, HUMAN])
    m.fake.script(
        Reply.tool_call("memory_replace", {"label": "human", "old_string": "unknown", "new_string": "Ada"}),
        Reply.text("Hi Ada."),
    )
    run = await m.send(agent.id, "I'm Ada")
    assert run.stop_reason == "end_turn"
    return [names.run_workflow_id(run.id)]


async def heartbeat_turn(m: Mnemo) -> list[str]:
    """A memgpt agent: a tool call with a heartbeat, then send_message ends the turn."""
    agent = await m.create_agent(memory_blocks=[PERSONA, HUMAN], agent_type="memgpt_agent")
    m.fake.script(
        Reply.tool_call("conversation_search", {"query": "cats", "request_heartbeat": True}),
        Reply.tool_call("send_message", {"message": "Nothing about cats yet."}),
    )
    run = await m.send(agent.id, "cats?")
    assert run.stop_reason == "end_turn"
    return [names.run_workflow_id(run.id)]


async def rule_refused(m: Mnemo) -> list[str]:
    """A call outside what the tool rules allow is refused, and the model tries again."""
    agent = await m.create_agent(
        memory_blocks=[PERSONA, HUMAN],
        tool_rules=[{"tool_name": "conversation_search", "type": "run_first"}],
    )
    m.fake.script(
        Reply.tool_call("memory_replace", {"label": "human", "old_string": "x", "new_string": "y"}),
        Reply.tool_call("conversation_search", {"query": "x"}),
        Reply.text("Done."),
    )
    run = await m.send(agent.id, "go")
    assert run.stop_reason == "end_turn"
    return [names.run_workflow_id(run.id)]


async def approval(m: Mnemo) -> list[str]:
    """A call waits for a human (the agent workflow holds it, with its timer), then is approved."""
    calls: list[int] = []

    async def transfer(amount: int) -> str:
        calls.append(amount)
        return f"moved {amount}"

    tool_id = await m.add_tool("transfer", transfer, {"amount": {"type": "integer"}})
    agent = await m.create_agent(
        memory_blocks=[PERSONA, HUMAN],
        tool_ids=[tool_id],
        tool_rules=[{"tool_name": "transfer", "type": "requires_approval"}],
    )
    m.fake.script(Reply.tool_call("transfer", {"amount": 5}, id="call_1"), Reply.text("Sent."))
    asked = await m.send(agent.id, "send 5")
    assert asked.stop_reason == "requires_approval"
    async with m.db.session() as s:
        answer = ApprovalCreate.model_validate({"approvals": [{"tool_call_id": "call_1", "approve": True}]})
        plan = await plan_input(s, agent.id, [answer], [])
    run = await m.runs.send(agent.id, plan.messages, request_config=plan.request_config, approval=True)
    done = await m.runs.wait(run.id, timeout=60)
    assert done.stop_reason == "end_turn" and calls == [5]
    return [names.run_workflow_id(asked.id), names.run_workflow_id(run.id), names.agent_workflow_id(agent.id)]


async def tool_run(m: Mnemo) -> list[str]:
    """`POST /v1/agents/{id}/tools/{name}/run`'s workflow."""
    agent = await m.create_agent(memory_blocks=[PERSONA, HUMAN])
    workflow_id = names.tool_run_workflow_id(new_id("replay"))
    out = await m.client.execute_workflow(
        names.TOOL_RUN_WORKFLOW,
        ToolRunInput(agent_id=agent.id, tool_name="conversation_search", args={"query": "x"}),
        id=workflow_id,
        task_queue=m.task_queue,
        result_type=ToolRunOutcome,
        execution_timeout=timedelta(seconds=60),
    )
    assert out.status == "success", out
    return [workflow_id]


SCENARIOS: dict[str, Scenario] = {
    "text_turn": text_turn,
    "tool_turn": tool_turn,
    "heartbeat_turn": heartbeat_turn,
    "rule_refused": rule_refused,
    "approval": approval,
    "tool_run": tool_run,
}


async def histories(m: Mnemo, workflow_ids: list[str]) -> list[WorkflowHistory]:
    """Each workflow's history; a run's once its workflow has closed (Postgres says a run ended before
    its workflow records it). The agent workflow never closes: its history so far."""
    out = []
    for wid in workflow_ids:
        handle = m.client.get_workflow_handle(wid)
        if not wid.startswith("agent:"):
            await handle.result()
        out.append(await handle.fetch_history())
    return out


async def replay(histories: list[WorkflowHistory]) -> None:
    """Replay with the worker's workflows, data converter and sandbox; raises on any nondeterminism."""
    replayer = Replayer(
        workflows=registry.workflows(),
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(pydantic_data_converter),
    )
    for history in histories:
        await replayer.replay_workflow(history)
