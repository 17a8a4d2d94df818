"""Prefilled tool arguments from tool rules: which calls get them (RuleSolver.prefills) and the schema
check they must pass (mnemo.tools.prefill), on Letta's examples."""

from __future__ import annotations

from typing import Any

import pytest

from mnemo.tools.prefill import InvalidPrefill, check_prefilled, merge_prefilled, prefill_error
from mnemo.tools.solver import Prefill, RuleSolver


def _schema(**props: Any) -> dict[str, Any]:
    return {"name": "t", "parameters": {"type": "object", "properties": props}}


def _child(parent: str, children: list[str], nodes: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    return {
        "tool_name": parent,
        "type": "constrain_child_tools",
        "children": children,
        "child_arg_nodes": [{"name": n, **({"args": a} if a is not None else {})} for n, a in nodes.items()],
    }


def test_init_args_hold_only_while_no_tool_has_run() -> None:
    solver = RuleSolver([{"tool_name": "alpha", "type": "run_first", "args": {"x": 1}}], ["alpha", "beta"])
    assert solver.prefills() == {"alpha": Prefill({"x": 1}, "InitToolRule(alpha)")}
    solver.record("alpha")
    assert solver.prefills() == {}


def test_several_init_rules_for_one_tool_merge_last_wins() -> None:
    rules: list[dict[str, Any]] = [
        {"tool_name": "alpha", "type": "run_first", "args": {"x": 1, "y": "first"}},
        {"tool_name": "alpha", "type": "run_first", "args": {"y": "second", "z": True}},
        {"tool_name": "beta", "type": "run_first"},
    ]
    solver = RuleSolver(rules, ["alpha", "beta"])
    assert solver.prefills() == {"alpha": Prefill({"x": 1, "y": "second", "z": True}, "InitToolRule(alpha)")}


def test_child_args_only_right_after_the_parent_and_only_for_named_children() -> None:
    solver = RuleSolver([_child("p", ["a", "b"], {"a": {"x": 1}, "b": None})], ["p", "a", "b", "q"])
    assert solver.prefills() == {}
    solver.record("p")
    assert solver.prefills() == {"a": Prefill({"x": 1}, "ChildToolRule(p->a)")}
    solver.record("a")
    assert solver.prefills() == {}


def test_child_args_follow_the_allowed_set() -> None:
    # A conditional rule on the same parent narrows the children to `b`: only `b` keeps its args.
    rules = [
        _child("p", ["a", "b"], {"a": {"x": 1}, "b": {"y": 2}}),
        {"tool_name": "p", "type": "conditional", "child_output_mapping": {"go-b": "b"}},
    ]
    solver = RuleSolver(rules, ["p", "a", "b"])
    solver.record("p", "go-b")
    assert solver.allowed() == ["b"]
    assert solver.prefills() == {"b": Prefill({"y": 2}, "ChildToolRule(p->b)")}


def test_init_args_are_not_used_after_the_init_phase() -> None:
    rules = [{"tool_name": "a", "type": "run_first", "args": {"x": 1}}, _child("a", ["a"], {"a": {"x": 2}})]
    solver = RuleSolver(rules, ["a"])
    assert solver.prefills()["a"].args == {"x": 1}
    solver.record("a")
    assert solver.prefills() == {"a": Prefill({"x": 2}, "ChildToolRule(a->a)")}


def test_no_rules_no_prefills() -> None:
    assert RuleSolver([], ["a"]).prefills() == {}


def test_prefill_overrides_the_models_values_and_keeps_the_rest() -> None:
    schema = _schema(a={"type": "integer"}, b={"type": "string"})
    assert merge_prefilled(schema, "t", {"a": 1, "b": "hi", "extra": 0}, {"a": 42}) == {
        "a": 42,
        "b": "hi",
        "extra": 0,
    }


@pytest.mark.parametrize(
    ("prop", "good", "bad"),
    [
        ({"type": "integer"}, 3, True),  # a bool is not an integer
        ({"type": "number"}, 3.5, "3.5"),
        ({"type": "boolean"}, False, 0),
        ({"type": "object"}, {"k": 1}, "nope"),
        ({"type": "array"}, [1], {}),
        ({"type": ["string", "null"]}, None, 5),
        ({"enum": ["x", "y"]}, "x", "z"),
        ({"const": 5}, 5, 6),
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, 7, []),
        ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, "s", []),
    ],
)
def test_values_are_checked_against_the_property_schema(prop: dict[str, Any], good: Any, bad: Any) -> None:
    check_prefilled(_schema(v=prop), "t", {"v": good})
    with pytest.raises(InvalidPrefill, match="Invalid value for 'v'"):
        check_prefilled(_schema(v=prop), "t", {"v": bad})


def test_every_problem_is_named_and_the_error_reads_as_lettas() -> None:
    with pytest.raises(InvalidPrefill) as info:
        check_prefilled(_schema(a={"type": "string"}), "t", {"zz": 1, "a": 5})
    assert str(info.value) == (
        "Unknown argument 'zz' for tool 't'.; "
        "Invalid value for 'a': 5 does not match expected schema type 'string'."
    )
    assert prefill_error("InitToolRule(t)", info.value).startswith(
        "Invalid prefilled tool arguments from tool rules (source=InitToolRule(t)): Unknown argument 'zz'"
    )
    assert prefill_error(None, InvalidPrefill("x")) == "Invalid prefilled tool arguments from tool rules: x"


def test_a_tool_without_parameters_takes_no_prefill() -> None:
    with pytest.raises(InvalidPrefill, match="Unknown argument 'x'"):
        check_prefilled({"name": "t"}, "t", {"x": 1})
    check_prefilled(_schema(x={"description": "untyped"}), "t", {"x": object()})  # no constraint: accepted
