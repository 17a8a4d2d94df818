"""The durable agent loop end to end: real Temporal, real Postgres, the scripted fake LLM."""

from __future__ import annotations

import asyncio
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


async def test_archival_insert_search_and_conversation_search(mnemo: Mnemo) -> None:
    agent = await mnemo.create_agent(
        memory_blocks=[PERSONA, HUMAN], tools=["archival_memory_insert", "archival_memory_search"]
    )
    mnemo.fake.script(
        Reply.tool_call("archival_memory_insert", {"content": "Ada's cat is called Tom", "tags": ["pets"]}),
        Reply.text("Noted."),
    )
    await mnemo.send(agent.id, "Remember: my cat is Tom")
    mnemo.fake.script(
        Reply.tool_call("archival_memory_search", {"query": "what is the cat called", "tags": ["pets"]}),
        Reply.tool_call("conversation_search", {"query": "cat"}),
        Reply.text("Your cat is Tom."),
    )
    run = await mnemo.send(agent.id, "What's my cat called?")
    assert run.stop_reason == "end_turn"
    returns = [json.loads(m.content[0]["text"]) for m in await mnemo.messages(agent.id) if m.role == "tool"]
    assert [r["status"] for r in returns] == ["OK", "OK", "OK"]
    assert returns[0]["message"] == "None"  # archival_memory_insert returns None, as in Letta
    found = json.loads(returns[1]["message"])
    assert found[0]["content"] == "Ada's cat is called Tom" and found[0]["tags"] == ["pets"]
    convo = json.loads(returns[2]["message"])
    assert convo["message"].startswith("Showing")
    contents = [r["content"] for r in convo["results"]]
    assert "Remember: my cat is Tom" in contents
    assert all(r["role"] in ("user", "assistant") for r in convo["results"])  # tool messages excluded
    # The recompiled system prompt now counts the archival memory.
    assert (
        "1 total memories you created are stored in archival memory"
        in mnemo.fake.chat_requests[-1]["messages"][0]["content"]
    )


async def test_tool_error_is_reported_to_the_model_and_state_is_intact(mnemo: Mnemo) -> None:
    agent = await mnemo.create_agent(memory_blocks=[PERSONA, {**HUMAN, "read_only": True}])
    mnemo.fake.script(
        Reply.tool_call("memory_replace", {"label": "human", "old_string": "unknown", "new_string": "Bo"}),
        Reply.tool_call("memory_insert", {"label": "nope", "new_string": "x"}),
        Reply.text("Sorry."),
    )
    run = await mnemo.send(agent.id, "I'm Bo")
    assert run.stop_reason == "end_turn"
    tool_msgs = [m for m in await mnemo.messages(agent.id) if m.role == "tool"]
    first, second = (json.loads(m.content[0]["text"]) for m in tool_msgs)
    assert first["status"] == "Failed" and "read-only" in first["message"]
    assert second["status"] == "Failed" and "nope" in second["message"]
    assert all(m.is_err for m in tool_msgs)
    assert "Name: unknown" in mnemo.fake.chat_requests[-1]["messages"][0]["content"]


async def test_malformed_tool_arguments_do_not_break_the_run(mnemo: Mnemo) -> None:
    from mnemo.fakellm import Fault

    agent = await mnemo.create_agent(memory_blocks=[PERSONA, HUMAN])
    mnemo.fake.script(Fault.malformed_tool_call(name="memory_insert"), Reply.text("Let me try again later."))
    run = await mnemo.send(agent.id, "hello")
    assert (run.status, run.stop_reason) == ("completed", "end_turn")
    tool = [m for m in await mnemo.messages(agent.id) if m.role == "tool"][0]
    assert tool.is_err and "Error parsing arguments for memory_insert" in tool.content[0]["text"]


async def test_memgpt_v2_agent_heartbeats_and_send_message(mnemo: Mnemo) -> None:
    agent = await mnemo.create_agent(memory_blocks=[PERSONA, HUMAN], agent_type="memgpt_v2_agent")
    mnemo.fake.script(
        Reply.tool_call(
            "memory_insert", {"label": "human", "new_string": "Likes tea", "request_heartbeat": True}
        ),
        Reply.tool_call("send_message", {"message": "Got it, tea it is."}),
    )
    run = await mnemo.send(agent.id, "I like tea")
    assert (run.status, run.stop_reason) == ("completed", "end_turn")
    requests = mnemo.fake.chat_requests[-2:]
    tools = {t["function"]["name"]: t["function"] for t in requests[0]["tools"]}
    assert "request_heartbeat" in tools["memory_insert"]["parameters"]["required"]
    assert "request_heartbeat" not in tools["send_message"]["parameters"]["properties"]  # terminal
    heartbeat = json.loads(requests[1]["messages"][-1]["content"])
    assert heartbeat["type"] == "heartbeat" and "request_heartbeat=true" in heartbeat["reason"]
    from mnemo.runtime.letta_messages import to_letta_messages

    out = [lm for m in await mnemo.messages(agent.id) for lm in to_letta_messages(m, "memgpt_v2_agent")]
    assistant = [lm for lm in out if lm["message_type"] == "assistant_message"]
    # The boot sequence's send_message (no run) comes first, then the run's own.
    assert [(a["content"], a["run_id"]) for a in assistant] == [
        ("More human than human is our motto.", None),
        ("Got it, tea it is.", run.id),
    ]


async def test_memgpt_v2_without_tool_call_stops_with_no_tool_call(mnemo: Mnemo) -> None:
    agent = await mnemo.create_agent(memory_blocks=[PERSONA, HUMAN], agent_type="memgpt_v2_agent")
    mnemo.fake.script(Reply.text("just text"))
    run = await mnemo.send(agent.id, "hi")
    assert (run.status, run.stop_reason) == ("failed", "no_tool_call")


async def test_max_steps_and_max_tokens(mnemo: Mnemo) -> None:
    agent = await mnemo.create_agent(memory_blocks=[PERSONA, HUMAN])
    mnemo.fake.set_policy("tool_then_text", tool_name="conversation_search", arguments={"query": "x"})
    mnemo.fake.script(*[Reply.tool_call("conversation_search", {"query": "x"}) for _ in range(3)])
    run = await mnemo.send(agent.id, "loop", max_steps=2)
    assert (run.status, run.stop_reason) == ("completed", "max_steps")
    assert run.usage and run.usage["step_count"] == 2
    mnemo.fake.reset()
    mnemo.fake.script(Reply.text("cut", finish_reason="length"))
    run = await mnemo.send(agent.id, "long")
    assert (run.status, run.stop_reason) == ("failed", "max_tokens_exceeded")


async def test_non_retryable_provider_error_fails_the_run(mnemo: Mnemo) -> None:
    from mnemo.fakellm import Fault

    agent = await mnemo.create_agent(memory_blocks=[PERSONA, HUMAN])
    mnemo.fake.script(Fault.status(401))
    run = await mnemo.send(agent.id, "hi")
    assert (run.status, run.stop_reason) == ("failed", "llm_api_error")
    assert len(mnemo.fake.chat_requests) == 1  # auth errors are not retried
    assert "llm_authentication" in (run.metadata_ or {}).get("error", "")


async def test_rate_limit_is_retried_then_succeeds(mnemo: Mnemo) -> None:
    from mnemo.fakellm import Fault

    agent = await mnemo.create_agent(memory_blocks=[PERSONA, HUMAN])
    mnemo.fake.script(Fault.rate_limit(retry_after=0.3), Fault.server_error(503), Reply.text("ok now"))
    run = await mnemo.send(agent.id, "hi")
    assert (run.status, run.stop_reason) == ("completed", "end_turn")
    assert len(mnemo.fake.chat_requests) == 3
    assistants = [m for m in await mnemo.messages(agent.id) if m.role == "assistant"]
    assert len(assistants) == 1


async def test_a_repeated_submission_of_a_queued_run_is_processed_once(mnemo: Mnemo) -> None:
    from mnemo.schemas.runs import SubmitRun

    agent = await mnemo.create_agent(memory_blocks=[PERSONA, HUMAN])
    mnemo.fake.script(Reply.text("first", delay=0.5), Reply.text("second"), Reply.text("never"))
    first = await mnemo.runs.send(agent.id, [{"role": "user", "content": "one"}])
    second = await mnemo.runs.send(agent.id, [{"role": "user", "content": "two"}])
    # A client retrying the submission of the queued run (e.g. after a lost reply) must not queue it twice.
    await mnemo.runs._submit(agent.id, SubmitRun(run_id=second.id, policy=mnemo.runs.policy))
    await mnemo.runs.wait(first.id, timeout=60)
    done = await mnemo.runs.wait(second.id, timeout=60)
    assert done.stop_reason == "end_turn"
    assert len(mnemo.fake.chat_requests) == 2 and mnemo.fake.pending == 1
    assert [t for r, t in await mnemo.context_texts(agent.id) if r == "assistant"] == ["first", "second"]
    from mnemo.schemas.runs import AgentWorkflowState
    from workflows import names

    handle = mnemo.client.get_workflow_handle(names.agent_workflow_id(agent.id))
    for _ in range(100):  # until the agent is idle: a duplicate would be queued or running by now
        state = await handle.query(names.STATE_QUERY, result_type=AgentWorkflowState)
        if state.current_run_id is None and not state.queued_run_ids:
            break
        await asyncio.sleep(0.05)
    assert (state.runs_processed, state.current_run_id, state.queued_run_ids) == (2, None, [])
