"""What "nothing duplicated, nothing lost" means, checked on the database a run left behind."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlmodel import col, select

from mnemo.runtime.context import assistant_message_id, step_id, tool_message_id
from mnemo.store.db import Database
from mnemo.store.tables import AgentRow, MessageRow, RunEventRow, RunRow, StepRow


@dataclass
class RunState:
    run: RunRow
    agent: AgentRow
    messages: list[MessageRow]  # the run's messages, in insertion order
    steps: list[StepRow]  # by step index
    events: list[dict]  # type: ignore[type-arg]

    def tool_calls(self) -> list[str]:
        return [c["id"] for m in self.messages if m.role == "assistant" for c in (m.tool_calls or [])]

    def tool_returns(self, call_id: str) -> list[MessageRow]:
        return [m for m in self.messages if m.role == "tool" and m.tool_call_id == call_id]


async def load(db: Database, run_id: str) -> RunState:
    async with db.session() as s:
        run = await s.get(RunRow, run_id)
        assert run is not None, f"run {run_id} not found"
        agent = await s.get(AgentRow, run.agent_id)
        assert agent is not None
        messages = (
            await s.exec(select(MessageRow).where(MessageRow.run_id == run_id).order_by(col(MessageRow.seq)))
        ).all()
        steps = (
            await s.exec(select(StepRow).where(StepRow.run_id == run_id).order_by(col(StepRow.step_index)))
        ).all()
        events = (
            await s.exec(
                select(RunEventRow).where(RunEventRow.run_id == run_id).order_by(col(RunEventRow.seq_id))
            )
        ).all()
    return RunState(run, agent, list(messages), list(steps), [e.event for e in events])


def assert_intact(
    state: RunState, roles: list[str], *, stop_reason: str = "end_turn", previous: list[str] | None = None
) -> None:
    """The run completed with exactly the messages `roles` says, each step's reply once, each tool call
    answered once, and the agent's context is the previous context plus this run's messages, in order.

    `previous`: the agent's message_ids before this run (default: just the system message).
    """
    run, messages, steps = state.run, state.messages, state.steps
    assert (run.status, run.stop_reason) == ("completed", stop_reason), (
        run.status,
        run.stop_reason,
        run.metadata_,
    )
    assert [m.role for m in messages] == roles, [(m.role, m.text) for m in messages]

    n_steps = roles.count("assistant")
    assert [st.step_index for st in steps] == list(range(n_steps)), [
        (st.step_index, st.status) for st in steps
    ]
    assert all(st.status == "success" for st in steps), [(st.step_index, st.status) for st in steps]
    assert [st.id for st in steps] == [step_id(run.id, i) for i in range(n_steps)]
    assistants = [m for m in messages if m.role == "assistant"]
    # One reply per step, with the step's deterministic id: a retried step never wrote a second one.
    assert [m.id for m in assistants] == [assistant_message_id(run.id, i) for i in range(n_steps)]
    assert [m.step_id for m in assistants] == [st.id for st in steps]
    assert run.usage is not None and run.usage["step_count"] == n_steps, run.usage

    calls = state.tool_calls()
    assert len(set(calls)) == len(calls), calls
    for call_id in calls:
        returns = state.tool_returns(call_id)
        assert [m.id for m in returns] == [tool_message_id(run.id, call_id)], (call_id, len(returns))
    assert sorted(m.tool_call_id or "" for m in messages if m.role == "tool") == sorted(calls)

    context = state.agent.message_ids
    duplicates = [mid for mid, n in Counter(context).items() if n > 1]
    assert not duplicates, f"context has duplicates: {duplicates}"
    before = previous if previous is not None else context[:1]
    assert context == [*before, *(m.id for m in messages)], "context lost or reordered messages"

    # The event log (what SSE streams) has each reply and tool return, once: one stored message may be
    # several Letta messages with one id, told apart by otid.
    keys = [
        (e["id"], e.get("otid")) for e in state.events if e.get("id") and e.get("message_type") != "delta"
    ]
    assert not [k for k, n in Counter(keys).items() if n > 1], f"event log has duplicates: {keys}"
    logged = {mid for mid, _ in keys}
    assert {m.id for m in messages if m.role in ("assistant", "tool")} <= logged, "event log lost a message"


def same_context(a: dict, b: dict) -> bool:  # type: ignore[type-arg]
    """Two model requests sent the same messages (a retry saw exactly what the killed attempt saw)."""
    return a["messages"] == b["messages"]
