"""SIGKILL the worker while it is compacting an agent's context (the summarizer call in flight): the
run finishes on a new worker with exactly one summary in the context and nothing lost."""

from __future__ import annotations

import pytest

from mnemo.fakellm import Reply
from mnemo.runtime.context import text_of
from tests.chaos.harness import Chaos

pytestmark = pytest.mark.chaos

SUMMARIZER = "fake-summarizer"


async def test_worker_killed_during_compaction(chaos: Chaos) -> None:
    chaos.workers.prepare()
    base = {"model_endpoint_type": "openai", "model_endpoint": chaos.fake.base_url}
    agent = await chaos.create_agent(
        memory_blocks=[{"label": "human", "value": "Ada"}],
        llm_config={**base, "model": "fake", "context_window": 4000},
        compaction_settings={"llm_config": {**base, "model": SUMMARIZER, "context_window": 128000}},
    )
    for i in range(4):
        chaos.fake.script(Reply.text(f"reply {i}"))
        await chaos.wait_run(await chaos.send(agent.id, f"message {i}"))
    chaos.fake.script(
        Reply.text("SUMMARY first attempt", delay=3.0),  # the worker dies while this is in flight
        Reply.text("SUMMARY after the crash"),
        model=SUMMARIZER,
    )
    chaos.fake.script(Reply.text("big reply", usage=(3800, 20)))  # over 90% of 4,000: compact
    run_id = await chaos.send(agent.id, "one more")

    async def summarizer_called() -> bool:
        return any(r["model"] == SUMMARIZER for r in chaos.fake.chat_requests)

    await chaos.until(summarizer_called, "the summarizer call")
    killed = chaos.workers.kill()
    assert killed.returncode == -9
    chaos.workers.start()
    run = await chaos.wait_run(run_id)
    assert (run.status, run.stop_reason) == ("completed", "end_turn")

    async with chaos.db.session() as s:
        from sqlmodel import col, select

        from mnemo.store.tables import AgentRow, MessageRow

        agent_row = await s.get(AgentRow, agent.id)
        assert agent_row is not None
        rows = {
            m.id: m
            for m in (
                await s.exec(
                    select(MessageRow).where(MessageRow.agent_id == agent.id).order_by(col(MessageRow.seq))
                )
            ).all()
        }
    summaries = [m for m in rows.values() if '"system_alert"' in text_of(m)]
    assert len(summaries) == 1 and "SUMMARY after the crash" in text_of(summaries[0])
    assert agent_row.message_ids[1] == summaries[0].id
    assert len(agent_row.message_ids) == len(set(agent_row.message_ids))
    # Nothing lost: every message is still stored, evicted ones included (recall memory).
    assert sum(1 for m in rows.values() if m.role == "user" and text_of(m).startswith("message ")) == 4
    assert [r["model"] for r in chaos.fake.chat_requests].count(SUMMARIZER) == 2  # killed attempt + retry
