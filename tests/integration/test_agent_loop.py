"""The durable agent loop end to end: real Temporal, real Postgres, the scripted fake LLM."""

from __future__ import annotations

import json

from mnemo.fakellm import Reply
from tests.fixtures.mnemo import Mnemo

PERSONA = {"label": "persona", "value": "I am Sam, a helpful assistant."}
HUMAN = {"label": "human", "value": "Name: unknown"}


async def test_one_step_text_turn(mnemo: Mnemo) -> None:
    agent = await mnemo.create_agent(memory_blocks=[PERSONA, HUMAN])
    mnemo.fake.script(Reply.text("Hello there!"))
    run = await mnemo.send(agent.id, "hi")
    assert (run.status, run.stop_reason) == ("completed", "end_turn")
    assert run.usage and run.usage["step_count"] == 1
    roles = [(r, t) for r, t in await mnemo.context_texts(agent.id)]
    assert [r for r, _ in roles] == ["system", "user", "assistant"]
    assert roles[1][1] == "hi" and roles[2][1] == "Hello there!"
    # The model saw the compiled system prompt with the memory blocks, then the user message.
    sent = mnemo.fake.chat_requests[-1]["messages"]
    assert "<persona>" in sent[0]["content"] and "I am Sam" in sent[0]["content"]
    assert sent[1] == {"role": "user", "content": "hi"}


async def test_memory_edit_then_reply(mnemo: Mnemo) -> None:
    agent = await mnemo.create_agent(memory_blocks=[PERSONA, HUMAN])
    mnemo.fake.script(
        Reply.tool_call("memory_replace", {"label": "human", "old_string": "unknown", "new_string": "Ada"}),
        Reply.text("Nice to meet you, Ada."),
    )
    run = await mnemo.send(agent.id, "I'm Ada")
    assert (run.status, run.stop_reason) == ("completed", "end_turn")
    ctx = await mnemo.context_texts(agent.id)
    assert [r for r, _ in ctx] == ["system", "user", "assistant", "tool", "assistant"]
    tool_return = json.loads(ctx[3][1])
    assert tool_return["status"] == "OK"
    # The edit is in the recompiled system prompt the second model call saw.
    second = mnemo.fake.chat_requests[-1]["messages"]
    assert "Name: Ada" in second[0]["content"]
    assert second[-1]["role"] == "tool"
