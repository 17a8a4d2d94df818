"""Tool rules: the prompt lines Letta renders into `<tool_usage_rules>`, and which tools end the loop.

The run workflow enforces the rules (mnemo.tools.solver); steps flag terminal, continue and
approval calls (mnemo.runtime.step).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mnemo.tools.builtin import TERMINAL_BASE_TOOLS


def _children(rule: Mapping[str, Any]) -> str:
    return ", ".join(rule.get("children") or [])


def rule_prompt(rule: Mapping[str, Any]) -> str | None:
    """Letta's `<tool_rule>` text for one rule, or None for rule types it does not render."""
    tool, kind = rule.get("tool_name", ""), rule.get("type")
    if kind == "exit_loop":
        return f"{tool} ends your response (yields control) when called"
    if kind == "continue_loop":
        return f"{tool} requires continuing your response when called"
    if kind == "constrain_child_tools":
        return f"After using {tool}, you must use one of these tools: {_children(rule)}"
    if kind == "parent_last_tool":
        return f"{_children(rule)} can only be used after {tool}"
    if kind == "conditional":
        return f"{tool} will determine which tool to use next based on its output"
    if kind == "max_count_per_step":
        return f"{tool}: at most {rule.get('max_count_limit')} use(s) per response"
    return None


def rule_prompts(rules: Iterable[Mapping[str, Any]]) -> list[str]:
    return [p for p in (rule_prompt(r) for r in rules) if p]


def terminal_tools(rules: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    return frozenset(r["tool_name"] for r in rules if r.get("type") == "exit_loop")


def continue_tools(rules: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    return frozenset(r["tool_name"] for r in rules if r.get("type") == "continue_loop")


def base_tool_rules(tool_names: Iterable[str]) -> list[dict[str, Any]]:
    """Letta's base rules for legacy agent types: terminal for send_message & co, continue otherwise."""
    return [
        {"tool_name": name, "type": "exit_loop" if name in TERMINAL_BASE_TOOLS else "continue_loop"}
        for name in tool_names
    ]
