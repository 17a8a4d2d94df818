"""Tool rules enforced by the run workflow, one test per rule type (requires_approval: test_approvals).
Real Temporal, real Postgres, the scripted fake LLM; the tools are in-process tools that count calls."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from mnemo.fakellm import Reply
from mnemo.ids import new_id
from mnemo.runtime.tools import InProcessTool
from mnemo.store.tables import AgentRow, ToolRow
from tests.fixtures.mnemo import Mnemo


async def _tools(mnemo: Mnemo, calls: Counter[str], outputs: dict[str, str] | None = None) -> list[str]:
    """Tools a, b, c (each returns its name, or `outputs[name]`) and `check(answer)` (returns answer)."""
    ids = []
    for name in ("a", "b", "c", "check"):

        async def run(name: str = name, **kwargs: Any) -> str:
            calls[name] += 1
            return str(kwargs.get("answer", (outputs or {}).get(name, name)))

        props = {"answer": {"type": "string"}} if name == "check" else {}
        schema = {
            "name": name,
            "description": f"tool {name}",
            "parameters": {"type": "object", "properties": props},
        }
        mnemo.extra_tools[name] = InProcessTool(name, run)
        row = ToolRow(id=new_id("tool"), name=name, tool_type="custom", json_schema=schema)
        async with mnemo.db.transaction() as s:
            s.add(row)
        ids.append(row.id)
    return ids


async def _agent(mnemo: Mnemo, calls: Counter[str], rules: list[dict[str, Any]], **kw: Any) -> AgentRow:
    ids = await _tools(mnemo, calls)
    return await mnemo.create_agent(
        memory_blocks=[], tool_ids=ids, tool_rules=rules, include_base_tools=False, **kw
    )


def _offered(request: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in request.get("tools") or []]


def _returns(messages: list[Any]) -> list[tuple[str | None, str]]:
    return [(m.name, json.loads(m.content[0]["text"])["message"]) for m in messages if m.role == "tool"]


async def test_run_first_forces_the_init_tool(mnemo: Mnemo) -> None:
    calls: Counter[str] = Counter()
    agent = await _agent(mnemo, calls, [{"tool_name": "b", "type": "run_first"}])
    mnemo.fake.script(Reply.tool_call("b", {}), Reply.text("done"))
    run = await mnemo.send(agent.id, "go")
    assert run.stop_reason == "end_turn" and calls == {"b": 1}
    first, second = mnemo.fake.chat_requests[-2:]
    assert _offered(first) == ["b"]
    assert first["tool_choice"] == {"type": "function", "function": {"name": "b"}}
    assert _offered(second) == ["a", "b", "c", "check"] and "tool_choice" not in second


async def test_exit_loop_ends_the_run_after_the_tool(mnemo: Mnemo) -> None:
    calls: Counter[str] = Counter()
    agent = await _agent(mnemo, calls, [{"tool_name": "a", "type": "exit_loop"}])
    mnemo.fake.script(Reply.tool_call("a", {}), Reply.text("never sent"))
    run = await mnemo.send(agent.id, "go")
    assert (run.stop_reason, calls["a"]) == ("tool_rule", 1)
    assert mnemo.fake.pending == 1  # the model was called once


async def test_continue_loop_keeps_a_heartbeat_agent_going(mnemo: Mnemo) -> None:
    calls: Counter[str] = Counter()
    rules = [{"tool_name": "a", "type": "continue_loop"}, {"tool_name": "c", "type": "exit_loop"}]
    agent = await _agent(mnemo, calls, rules, agent_type="memgpt_v2_agent")
    # No heartbeat asked for: without the rule the turn would end after `a`; with it, it goes on.
    mnemo.fake.script(
        Reply.tool_call("a", {"request_heartbeat": False}),
        Reply.tool_call("b", {"request_heartbeat": False}),
    )
    run = await mnemo.send(agent.id, "go")
    assert run.stop_reason == "end_turn"
    assert calls == {"a": 1, "b": 1}
    heartbeat = json.loads(mnemo.fake.chat_requests[-1]["messages"][-1]["content"])
    assert heartbeat["reason"].endswith("Continuing: continue tool rule.")


async def test_constrain_child_tools_offers_only_the_children(mnemo: Mnemo) -> None:
    calls: Counter[str] = Counter()
    agent = await _agent(
        mnemo, calls, [{"tool_name": "a", "type": "constrain_child_tools", "children": ["c"]}]
    )
    mnemo.fake.script(Reply.tool_call("a", {}), Reply.tool_call("c", {}), Reply.text("done"))
    run = await mnemo.send(agent.id, "go")
    assert run.stop_reason == "end_turn" and calls == {"a": 1, "c": 1}
    after_a = mnemo.fake.chat_requests[-2]
    assert _offered(after_a) == ["c"]
    assert after_a["tool_choice"] == {"type": "function", "function": {"name": "c"}}
    assert "tool_choice" not in mnemo.fake.chat_requests[-1]


async def test_parent_last_tool_hides_children_until_the_parent_ran(mnemo: Mnemo) -> None:
    calls: Counter[str] = Counter()
    agent = await _agent(mnemo, calls, [{"tool_name": "a", "type": "parent_last_tool", "children": ["b"]}])
    mnemo.fake.script(Reply.tool_call("a", {}), Reply.tool_call("b", {}), Reply.text("done"))
    run = await mnemo.send(agent.id, "go")
    assert run.stop_reason == "end_turn" and calls == {"a": 1, "b": 1}
    first, after_a, after_b = mnemo.fake.chat_requests[-3:]
    assert "b" not in _offered(first)
    assert _offered(after_a) == ["b"] and after_a["tool_choice"]["function"]["name"] == "b"
    assert "b" not in _offered(after_b)


async def test_conditional_picks_the_next_tool_from_the_output(mnemo: Mnemo) -> None:
    calls: Counter[str] = Counter()
    rule = {
        "tool_name": "check",
        "type": "conditional",
        "child_output_mapping": {"yes": "a", "no": "b"},
        "default_child": "c",
    }
    agent = await _agent(mnemo, calls, [rule])
    mnemo.fake.script(Reply.tool_call("check", {"answer": "no"}), Reply.tool_call("b", {}), Reply.text("ok"))
    await mnemo.send(agent.id, "go")
    assert _offered(mnemo.fake.chat_requests[-2]) == ["b"]
    mnemo.fake.script(
        Reply.tool_call("check", {"answer": "maybe"}), Reply.tool_call("c", {}), Reply.text("ok")
    )
    await mnemo.send(agent.id, "again")
    assert _offered(mnemo.fake.chat_requests[-2]) == ["c"]  # no match: the default child
    assert calls == {"check": 2, "b": 1, "c": 1}


async def test_max_count_per_step_removes_the_tool_and_refuses_extra_calls(mnemo: Mnemo) -> None:
    calls: Counter[str] = Counter()
    agent = await _agent(
        mnemo, calls, [{"tool_name": "a", "type": "max_count_per_step", "max_count_limit": 1}]
    )
    mnemo.fake.script(Reply.tool_call("a", {}), Reply.tool_call("a", {}), Reply.text("done"))
    run = await mnemo.send(agent.id, "go")
    assert run.stop_reason == "end_turn"
    assert calls["a"] == 1  # the second call was refused, not run
    assert "a" not in _offered(mnemo.fake.chat_requests[-2])
    name, text = _returns(await mnemo.messages(agent.id))[-1]
    assert name == "a"
    assert text.startswith("[ToolConstraintError] Cannot call a, valid tools include: ['b', 'c', 'check'].")
    assert "a: at most 1 use(s) per response" in text  # the hint names the rule
    # The count is per request: the next message may call `a` again.
    mnemo.fake.script(Reply.tool_call("a", {}), Reply.text("done"))
    await mnemo.send(agent.id, "again")
    assert calls["a"] == 2


async def test_required_before_exit_keeps_the_turn_open(mnemo: Mnemo) -> None:
    calls: Counter[str] = Counter()
    agent = await _agent(mnemo, calls, [{"tool_name": "c", "type": "required_before_exit"}])
    mnemo.fake.script(Reply.text("bye"), Reply.tool_call("c", {}), Reply.text("bye now"))
    run = await mnemo.send(agent.id, "go")
    assert run.stop_reason == "end_turn" and calls == {"c": 1}
    nudged = mnemo.fake.chat_requests[-2]["messages"][-1]
    assert nudged["role"] == "user"
    assert "ToolRuleViolated: You must call c at least once to exit the loop." in nudged["content"]


async def test_an_agent_without_rules_is_offered_every_tool_and_no_forced_choice(mnemo: Mnemo) -> None:
    calls: Counter[str] = Counter()
    agent = await _agent(mnemo, calls, [])
    mnemo.fake.script(Reply.tool_call("b", {}), Reply.text("done"))
    run = await mnemo.send(agent.id, "go")
    assert run.stop_reason == "end_turn"
    for request in mnemo.fake.chat_requests[-2:]:
        assert _offered(request) == ["a", "b", "c", "check"] and "tool_choice" not in request


def _calls_args(messages: list[Any], tool: str) -> list[dict[str, Any]]:
    """The recorded arguments of every call of `tool`, in order."""
    return [
        json.loads(c["function"]["arguments"])
        for m in messages
        for c in m.tool_calls or []
        if c["function"]["name"] == tool
    ]


async def test_run_first_args_fill_only_the_first_call_of_each_request(mnemo: Mnemo) -> None:
    calls: Counter[str] = Counter()
    agent = await _agent(
        mnemo, calls, [{"tool_name": "check", "type": "run_first", "args": {"answer": "fixed"}}]
    )
    mnemo.fake.script(
        Reply.tool_call("check", {"answer": "from the model"}),
        Reply.tool_call("check", {"answer": "second call"}),
        Reply.text("done"),
    )
    run = await mnemo.send(agent.id, "go")
    assert run.stop_reason == "end_turn"
    # The init phase ends with the first call: the second call keeps the model's arguments.
    assert _returns(await mnemo.messages(agent.id)) == [("check", "fixed"), ("check", "second call")]
    # The transcript records what ran, so the model reads the arguments the tool got.
    assert _calls_args(await mnemo.messages(agent.id), "check") == [
        {"answer": "fixed"},
        {"answer": "second call"},
    ]
    sent = mnemo.fake.chat_requests[-1]["messages"]
    shown = [json.loads(c["function"]["arguments"]) for m in sent for c in m.get("tool_calls") or []]
    assert shown == [{"answer": "fixed"}, {"answer": "second call"}]
    # A new request starts a new init phase.
    mnemo.fake.script(Reply.tool_call("check", {"answer": "again"}), Reply.text("done"))
    await mnemo.send(agent.id, "once more")
    assert _returns(await mnemo.messages(agent.id))[-1] == ("check", "fixed")
    assert calls == {"check": 3}


async def test_child_arg_nodes_fill_the_named_child_right_after_the_parent(mnemo: Mnemo) -> None:
    calls: Counter[str] = Counter()
    rule = {
        "tool_name": "a",
        "type": "constrain_child_tools",
        "children": ["b", "check"],
        "child_arg_nodes": [{"name": "check", "args": {"answer": "from the rule"}}],
    }
    agent = await _agent(mnemo, calls, [rule])
    mnemo.fake.script(
        Reply.tool_call("check", {"answer": "before a"}),
        Reply.tool_call("a", {}),
        Reply.tool_call("check", {"answer": "model 1"}),
        Reply.tool_call("check", {"answer": "model 2"}),
        Reply.text("done"),
    )
    run = await mnemo.send(agent.id, "go")
    assert run.stop_reason == "end_turn"
    assert _returns(await mnemo.messages(agent.id)) == [
        ("check", "before a"),  # the parent has not run: no prefill
        ("a", "a"),
        ("check", "from the rule"),  # right after the parent
        ("check", "model 2"),  # no longer right after it
    ]
    # The other child gets no arguments from the node.
    mnemo.fake.script(Reply.tool_call("a", {}), Reply.tool_call("b", {"answer": "model 3"}), Reply.text("ok"))
    run = await mnemo.send(agent.id, "again")
    assert run.stop_reason == "end_turn"
    assert _returns(await mnemo.messages(agent.id))[-1] == ("b", "model 3")
    assert calls == {"check": 3, "a": 2, "b": 1}


async def test_an_invalid_prefill_refuses_the_call_and_stops_the_run(mnemo: Mnemo) -> None:
    calls: Counter[str] = Counter()
    rules: list[dict[str, Any]] = [
        {"tool_name": "check", "type": "run_first", "args": {"nope": 1}},
        {"tool_name": "check", "type": "constrain_child_tools", "children": ["a"]},
    ]
    agent = await _agent(mnemo, calls, rules)
    mnemo.fake.script(Reply.tool_call("check", {"answer": "hi"}), Reply.text("never asked for"))
    run = await mnemo.send(agent.id, "go")
    assert (run.status, run.stop_reason) == ("failed", "invalid_tool_call")
    assert calls == {} and mnemo.fake.pending == 1  # not run, and the model was called once
    messages = await mnemo.messages(agent.id)
    assert _returns(messages) == [
        (
            "check",
            "Invalid prefilled tool arguments from tool rules (source=InitToolRule(check)): "
            "Unknown argument 'nope' for tool 'check'.",
        )
    ]
    assert _calls_args(messages, "check") == [{"answer": "hi"}]  # what the model asked for, unchanged


async def test_a_wrongly_typed_child_prefill_stops_the_run_and_the_agent_carries_on(mnemo: Mnemo) -> None:
    calls: Counter[str] = Counter()
    rule = {
        "tool_name": "a",
        "type": "constrain_child_tools",
        "children": ["check"],
        "child_arg_nodes": [{"name": "check", "args": {"answer": 5}}],
    }
    agent = await _agent(mnemo, calls, [rule])
    mnemo.fake.script(Reply.tool_call("a", {}), Reply.tool_call("check", {"answer": "hi"}), Reply.text("no"))
    run = await mnemo.send(agent.id, "go")
    assert (run.status, run.stop_reason) == ("failed", "invalid_tool_call")
    assert calls == {"a": 1}
    name, text = _returns(await mnemo.messages(agent.id))[-1]
    assert (name, text) == (
        "check",
        "Invalid prefilled tool arguments from tool rules (source=ChildToolRule(a->check)): "
        "Invalid value for 'answer': 5 does not match expected schema type 'string'.",
    )
    # The next request reads a whole transcript: every call has its return, the refused one too.
    mnemo.fake.script(Reply.text("still here"))
    run = await mnemo.send(agent.id, "hello?")
    assert run.stop_reason == "end_turn"
    sent = mnemo.fake.chat_requests[-1]["messages"]
    asked = [c["id"] for m in sent if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    answered = [m["tool_call_id"] for m in sent if m["role"] == "tool"]
    assert len(asked) == 2 and asked == answered
    assert "tool_choice" not in mnemo.fake.chat_requests[-1]  # the rules start afresh


async def test_an_approved_call_gets_the_init_args_of_its_new_request(mnemo: Mnemo) -> None:
    from api.approvals import ApprovalCreate, plan_input

    calls: Counter[str] = Counter()
    rules: list[dict[str, Any]] = [
        {"tool_name": "check", "type": "run_first", "args": {"answer": "fixed"}},
        {"tool_name": "check", "type": "requires_approval"},
    ]
    agent = await _agent(mnemo, calls, rules)
    mnemo.fake.script(Reply.tool_call("check", {"answer": "model"}, id="call_1"))
    run = await mnemo.send(agent.id, "go")
    assert run.stop_reason == "requires_approval" and calls == {}
    answer = ApprovalCreate(approvals=[{"tool_call_id": "call_1", "approve": True}])  # type: ignore[list-item]
    async with mnemo.db.session() as s:
        plan = await plan_input(s, agent.id, [answer], [])
    mnemo.fake.script(Reply.text("done"))
    run = await mnemo.runs.send(
        agent.id, plan.messages, request_config=plan.request_config, approval=plan.approval
    )
    run = await mnemo.runs.wait(run.id, timeout=60)
    assert run.stop_reason == "end_turn"
    assert _returns(await mnemo.messages(agent.id)) == [("check", "fixed")]


async def test_bad_rules_are_refused_when_the_agent_is_created(mnemo: Mnemo) -> None:
    import pydantic
    import pytest

    from mnemo.schemas.agents import CreateAgent

    for rule in (
        {"tool_name": "a", "type": "no_such_rule"},
        {"tool_name": "a", "type": "constrain_child_tools"},
        {"tool_name": "a", "type": "conditional", "child_output_mapping": {}},
        {"tool_name": "a", "type": "max_count_per_step"},
        {
            "tool_name": "a",
            "type": "constrain_child_tools",
            "children": ["b"],
            "child_arg_nodes": [{"name": "c"}],
        },
        {
            "tool_name": "a",
            "type": "constrain_child_tools",
            "children": ["b"],
            "child_arg_nodes": [{"args": {}}],
        },
        {
            "tool_name": "a",
            "type": "constrain_child_tools",
            "children": ["b"],
            "child_arg_nodes": [{"name": "b", "args": 1}],
        },
        {"tool_name": "a", "type": "parent_last_tool", "children": ["b"], "child_arg_nodes": [{"name": "b"}]},
    ):
        with pytest.raises(pydantic.ValidationError):
            CreateAgent(tool_rules=[rule])  # type: ignore[list-item]


async def test_a_resumed_run_keeps_the_tools_it_already_ran(mnemo: Mnemo) -> None:
    """Resumed after a provider outage, a run's rules still know what it ran before: run_first is over
    (no forced call of b again), and max_count_per_step still counts b's earlier call."""
    from mnemo.fakellm import Fault
    from tests.fixtures.mnemo import TEST_POLICY

    calls: Counter[str] = Counter()
    rules = [
        {"tool_name": "b", "type": "run_first"},
        {"tool_name": "b", "type": "max_count_per_step", "max_count_limit": 1},
    ]
    agent = await _agent(mnemo, calls, rules)
    # Steps 0 and 1 succeed (b, then a); step 2's model call fails for good. The resume starts again
    # at step 1 (the last successful step, to finish its tool calls): step 0's call of b is history.
    mnemo.fake.script(
        Reply.tool_call("b", {}),
        Reply.tool_call("a", {}),
        *[Fault.server_error(500) for _ in range(TEST_POLICY.llm_max_attempts)],
    )
    run = await mnemo.send(agent.id, "go")
    assert (run.status, run.stop_reason) == ("failed", "llm_api_error") and calls == {"b": 1, "a": 1}

    mnemo.fake.script(Reply.text("done"))
    await mnemo.runs.resume(run.id)
    resumed = await mnemo.runs.wait(run.id, timeout=60)
    assert (resumed.status, resumed.stop_reason) == ("completed", "end_turn")
    assert calls == {"b": 1, "a": 1}
    after = mnemo.fake.chat_requests[-1]
    assert _offered(after) == ["a", "c", "check"] and "tool_choice" not in after
