"""Compaction inside the durable loop: proactive (last call over 90% of the window), reactive (the
provider says the context is too long), the system prompt alone too large, and a long conversation
that never overflows and forgets nothing (evicted messages stay searchable)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mnemo.fakellm import Fault, Reply
from mnemo.runtime import search
from mnemo.runtime.context import text_of
from tests.fixtures.mnemo import Mnemo

SUMMARIZER = "fake-summarizer"


def _configs(mnemo: Mnemo, window: int) -> dict[str, Any]:
    base = {"model_endpoint_type": "openai", "model_endpoint": mnemo.fake.base_url}
    return {
        "llm_config": {**base, "model": "fake", "context_window": window},
        # The summarizer is a separate model call; its own queue keeps the agent's replies apart.
        "compaction_settings": {"llm_config": {**base, "model": SUMMARIZER, "context_window": 128000}},
    }


async def _summary_rows(mnemo: Mnemo, agent_id: str) -> list[str]:
    return [text_of(m) for m in await mnemo.messages(agent_id) if '"system_alert"' in text_of(m)]


async def test_proactive_compaction_after_a_step_over_90_percent(mnemo: Mnemo) -> None:
    agent = await mnemo.create_agent(
        memory_blocks=[{"label": "human", "value": "Ada"}], **_configs(mnemo, 4000)
    )
    for i in range(6):
        mnemo.fake.script(Reply.text(f"reply {i}", usage=(500, 10)))
        await mnemo.send(agent.id, f"message number {i}")
    mnemo.fake.script(Reply.text("SUMMARY: Ada chatted about numbered messages."), model=SUMMARIZER)
    mnemo.fake.script(Reply.text("big reply", usage=(3700, 20)))  # 3,720 > 90% of 4,000
    run = await mnemo.send(agent.id, "one more")
    assert (run.status, run.stop_reason) == ("completed", "end_turn")
    ctx = await mnemo.context_texts(agent.id)
    summary = json.loads(ctx[1][1])
    assert summary["type"] == "system_alert" and "SUMMARY: Ada chatted" in summary["message"]
    assert "messages from the beginning of the conversation have been hidden" in summary["message"]
    assert len(ctx) < 2 + 14  # some of the 14 messages were evicted...
    evicted_text = "message number 0"
    assert all(evicted_text not in t for _, t in ctx)
    # ...but remain in recall memory.
    async with mnemo.db.session() as s:
        found = await search.conversation_search(
            s,
            agent.id,
            None,
            query="number 0",
            roles=None,
            limit=20,
            start_date=None,
            end_date=None,
            tz="UTC",
        )
    assert evicted_text in [r["content"] for r in found["results"]]
    # The summarizer saw the evicted transcript, and the next prompt counts the hidden messages.
    summarizer_call = [r for r in mnemo.fake.chat_requests if r["model"] == SUMMARIZER][-1]
    assert "message number 0" in summarizer_call["messages"][-1]["content"]
    mnemo.fake.script(Reply.text("ok"))
    await mnemo.send(agent.id, "after")
    system = mnemo.fake.chat_requests[-1]["messages"][0]["content"]
    assert "previous messages between you and the user are stored in recall memory" in system


async def test_context_overflow_compacts_then_retries_the_step(mnemo: Mnemo) -> None:
    agent = await mnemo.create_agent(
        memory_blocks=[{"label": "human", "value": "Ada"}], **_configs(mnemo, 4000)
    )
    for i in range(4):
        mnemo.fake.script(Reply.text(f"reply {i}"))
        await mnemo.send(agent.id, f"turn {i}")
    mnemo.fake.script(Reply.text("SUMMARY of turns"), model=SUMMARIZER)
    mnemo.fake.script(Fault.context_overflow(), Reply.text("fits now"))
    run = await mnemo.send(agent.id, "overflowing turn")
    assert (run.status, run.stop_reason) == ("completed", "end_turn")
    assert len(await _summary_rows(mnemo, agent.id)) == 1
    last = mnemo.fake.chat_requests[-1]["messages"]
    assert "SUMMARY of turns" in last[1]["content"] and last[-1] == {
        "role": "user",
        "content": "overflowing turn",
    }
    assistants = [m for m in await mnemo.messages(agent.id) if m.run_id == run.id and m.role == "assistant"]
    assert [text_of(m) for m in assistants] == ["fits now"]


async def test_system_prompt_alone_too_large_stops_the_run(mnemo: Mnemo) -> None:
    agent = await mnemo.create_agent(
        memory_blocks=[{"label": "human", "value": "x" * 4000}], **_configs(mnemo, 500)
    )
    mnemo.fake.script(Fault.context_overflow())
    run = await mnemo.send(agent.id, "hi")
    assert (run.status, run.stop_reason) == ("failed", "context_window_overflow_in_system_prompt")
    assert "shorten the system prompt" in (run.metadata_ or {}).get("error", "")


@pytest.mark.slow
async def test_long_conversation_never_overflows_and_forgets_nothing(mnemo: Mnemo) -> None:
    turns = 500
    agent = await mnemo.create_agent(
        memory_blocks=[{"label": "human", "value": "Ada"}], **_configs(mnemo, 4096)
    )
    mnemo.fake.set_policy("echo")
    mnemo.fake.script(
        *[Reply.text(f"Summary #{i}: a long chat about numbered facts.") for i in range(60)], model=SUMMARIZER
    )
    for i in range(turns):
        run = await mnemo.send(agent.id, f"fact {i} is zq{i}x")
        assert run.stop_reason == "end_turn", (i, run.metadata_)
    summaries = await _summary_rows(mnemo, agent.id)
    assert len(summaries) >= 3, "several compactions"
    # No call ever exceeded the window (the fake estimates prompt tokens at len(json)/4).
    agent_calls = [r for r in mnemo.fake.chat_requests if r["model"] == "fake"]
    assert max(len(json.dumps(r["messages"])) // 4 for r in agent_calls) < 4096
    in_context = {t for _, t in await mnemo.context_texts(agent.id)}
    evicted = [i for i in range(turns) if f"fact {i} is zq{i}x" not in in_context]
    assert len(evicted) > turns // 2
    async with mnemo.db.session() as s:
        for i in evicted:
            found = await search.conversation_search(
                s,
                agent.id,
                None,
                query=f"zq{i}x",
                roles=["user"],
                limit=3,
                start_date=None,
                end_date=None,
                tz="UTC",
            )
            assert f"fact {i} is zq{i}x" in [r["content"] for r in found["results"]], i


async def test_a_request_estimated_over_the_window_is_compacted_before_the_call(mnemo: Mnemo) -> None:
    agent = await mnemo.create_agent(
        memory_blocks=[{"label": "human", "value": "Ada"}], **_configs(mnemo, 2000)
    )
    for i in range(12):  # each turn adds ~2 x 300 characters to the context
        mnemo.fake.script(Reply.text(f"reply {i} " + "y" * 300))
        await mnemo.send(agent.id, f"message {i} " + "x" * 300)
    before = len([r for r in mnemo.fake.chat_requests if r["model"] == "fake"])
    mnemo.fake.script(Reply.text("SUMMARY of a long chat"), model=SUMMARIZER)
    mnemo.fake.script(Reply.text("fits"))
    run = await mnemo.send(agent.id, "and now?")
    assert (run.status, run.stop_reason) == ("completed", "end_turn")
    agent_calls = [r for r in mnemo.fake.chat_requests if r["model"] == "fake"][before:]
    # One call, already on the compacted context: the over-long request never reached the provider.
    assert len(agent_calls) == 1 and "SUMMARY of a long chat" in agent_calls[0]["messages"][1]["content"]
    assert len(json.dumps(agent_calls[0]["messages"])) // 4 < 2000
