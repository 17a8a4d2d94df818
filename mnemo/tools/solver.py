"""Tool-rule enforcement: which tools the model may call next, whether it must call one, and what a
violation or a missing required call tells it. Letta's ToolRulesSolver semantics.

Pure and deterministic: the run workflow keeps a `RuleSolver` for the run (its history is the tools
called in this request) and asks it before and after every step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from mnemo.tools.rules import rule_prompt

NON_USER_PREFIX = "[This is an automated system message hidden from the user] "
CONSTRAINT_ERROR = "[ToolConstraintError]"
# Rule types the workflow needs to see; `exit_loop`, `continue_loop` and `requires_approval` are
# flagged per call by the step itself (ToolCallRef), so they never travel in history.
CONTROL_RULE_TYPES = frozenset(
    {
        "run_first",
        "constrain_child_tools",
        "parent_last_tool",
        "conditional",
        "max_count_per_step",
        "required_before_exit",
    }
)
CHILD_BASED = ("constrain_child_tools", "conditional", "max_count_per_step")
FORCING = ("constrain_child_tools", "conditional", "parent_last_tool")
HINTED = ("run_first", "continue_loop", *CHILD_BASED, "parent_last_tool", "exit_loop")


class Prefill(NamedTuple):
    """Arguments a rule fixes for the next call of a tool, and which rule (Letta's provenance text)."""

    args: dict[str, Any]
    source: str


def control_rules(rules: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(r) for r in rules if r.get("type") in CONTROL_RULE_TYPES]


def _matches(output: str, key: Any) -> bool:
    # Keys arrive through JSON, so a bool/number key may be its string form: compare as Letta does
    # for typed keys, and exactly for strings.
    if isinstance(key, bool):
        return output.lower() == str(key).lower()
    if isinstance(key, int | float):
        try:
            return float(output) == float(key)
        except ValueError:
            return False
    return output == str(key)


class RuleSolver:
    def __init__(
        self,
        rules: Iterable[Mapping[str, Any]],
        available: Iterable[str],
        history: Iterable[str] = (),
        last_output: str | None = None,
    ) -> None:
        self.rules = [dict(r) for r in rules]
        self.available = list(available)
        self.history = list(history)
        self.last_output = last_output

    def of_type(self, *kinds: str) -> list[dict[str, Any]]:
        return [r for r in self.rules if r.get("type") in kinds]

    @property
    def active(self) -> bool:
        return bool(self.rules)

    def record(self, name: str, output: str | None = None) -> None:
        self.history.append(name)
        self.last_output = output

    def reports_output(self, name: str) -> bool:
        """Whether the next step depends on this tool's return (a conditional rule reads it)."""
        return any(r.get("tool_name") == name for r in self.of_type("conditional"))

    # -- before a step -----------------------------------------------------------------------
    def allowed(self) -> list[str] | None:
        """The tools the model may call next, in the agent's order; None = no restriction."""
        if not self.rules:
            return None
        avail = set(self.available)
        if not self.history:
            init = [r["tool_name"] for r in self.of_type("run_first")]
            if init:
                return list(dict.fromkeys(init))
            parents = {c for r in self.of_type("parent_last_tool") for c in r.get("children") or []}
            result = avail - parents
        else:
            result = set(avail)
            for rule in self.of_type(*CHILD_BASED, "parent_last_tool"):
                result &= self._valid_after(rule, avail)
        return [t for t in self.available if t in result] + sorted(result - avail)

    def prefills(self) -> dict[str, Prefill]:
        """Letta's prefilled-args cache for the next step: `run_first` args while no tool has run in
        this request, then a `constrain_child_tools` rule's `child_arg_nodes` right after its parent;
        only for tools the step may call. Several rules for one tool merge, the last one winning."""
        allowed = set(self.allowed() or ())
        found: dict[str, Prefill] = {}

        def add(tool: str, args: Any, source: str) -> None:
            if tool in allowed and isinstance(args, dict) and args:
                found[tool] = Prefill({**(found[tool].args if tool in found else {}), **args}, source)

        if not self.history and self.of_type("run_first"):
            for rule in self.of_type("run_first"):
                add(rule["tool_name"], rule.get("args"), f"InitToolRule({rule['tool_name']})")
            return found
        last = self.history[-1] if self.history else None
        for rule in self.of_type("constrain_child_tools"):
            if rule.get("tool_name") != last:
                continue
            for node in rule.get("child_arg_nodes") or []:
                child = node.get("name")
                add(str(child), node.get("args"), f"ChildToolRule({last}->{child})")
        return found

    def _valid_after(self, rule: Mapping[str, Any], avail: set[str]) -> set[str]:
        kind, tool = rule.get("type"), rule.get("tool_name")
        last = self.history[-1] if self.history else None
        children = set(rule.get("children") or [])
        if kind == "constrain_child_tools":
            return children if last == tool else avail
        if kind == "parent_last_tool":
            return children if last == tool else avail - children
        if kind == "max_count_per_step":
            limit = int(rule.get("max_count_limit") or 0)
            return avail - {tool} if self.history.count(str(tool)) >= limit else avail
        if kind == "conditional":
            return self._conditional(rule, avail) if last == tool else avail
        return avail

    def _conditional(self, rule: Mapping[str, Any], avail: set[str]) -> set[str]:
        default = rule.get("default_child")
        strict = bool(rule.get("require_output_mapping"))
        output = self.last_output
        if output is None:
            return set() if strict else ({default} if default else avail)
        for key, child in (rule.get("child_output_mapping") or {}).items():
            if _matches(output, key):
                return {child}
        return set() if strict else ({default} if default else avail)

    def force_tool_call(self) -> bool:
        """Letta's should_force_tool_call: at the start with init rules, or right after a tool that
        constrains what comes next."""
        if not self.rules:
            return False
        if not self.history:
            return bool(self.of_type("run_first"))
        last = self.history[-1]
        return any(r.get("tool_name") == last for r in self.of_type(*FORCING))

    def tool_choice(self, allowed: list[str] | None) -> str | None:
        """`"required"`, a single tool's name, or None (the model may answer in text)."""
        if not self.force_tool_call():
            return None
        if allowed is not None and len(allowed) == 1:
            return allowed[0]
        return "required"

    # -- after a step ------------------------------------------------------------------------
    def has_children(self, name: str) -> bool:
        return any(r.get("tool_name") == name for r in self.of_type(*CHILD_BASED))

    def uncalled_required(self) -> list[str]:
        required = [r["tool_name"] for r in self.of_type("required_before_exit")]
        called = set(self.history)
        return [t for t in dict.fromkeys(required) if t in self.available and t not in called]

    def violation(self, name: str, allowed: list[str]) -> str:
        """Letta's `[ToolConstraintError]` return for a call outside the allowed set."""
        previous = self.history[-1] if self.history else None
        hints = [
            p
            for r in self.of_type(*HINTED)
            if r.get("tool_name") in (name, previous)
            for p in [rule_prompt(r)]
            if p
        ]
        hint = (
            ("\n** Hint: Possible rules that were violated:\n" + "\n".join(f"\t- {h}" for h in hints))
            if hints
            else ""
        )
        return f"{CONSTRAINT_ERROR} Cannot call {name}, valid tools include: {allowed}.{hint}"


def required_reason(missing: list[str]) -> str:
    """The hidden message that keeps a letta_v1 loop going until the required tools ran."""
    return f"{NON_USER_PREFIX}ToolRuleViolated: You must call {', '.join(missing)} at least once to exit the loop."
