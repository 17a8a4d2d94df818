"""Arguments a tool rule fixes for a call (Letta's `InitToolRule.args` and `ChildToolRule.child_arg_nodes`):
checked against the tool's JSON schema, then laid over the model's arguments.

The check is Letta's (letta/agents/helpers.py `merge_and_validate_prefilled_args`): every prefilled key
must be a parameter of the tool, and its value must pass a shallow const/enum/anyOf/oneOf/type test.
Deeper structure is left to the tool, as in Letta, so both servers accept and refuse the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

INVALID_PREFILL = "Invalid prefilled tool arguments from tool rules"


class InvalidPrefill(ValueError):
    """A rule's prefilled arguments do not fit the tool: the call is not run."""


def _type_matches(value: Any, expected: Any) -> bool:
    if isinstance(expected, list):
        return any(_type_matches(value, t) for t in expected)
    if not isinstance(expected, str):
        return True
    # bool is an int in Python but not a JSON number; unknown type names are not refused.
    is_int = isinstance(value, int) and not isinstance(value, bool)
    checks = {
        "string": isinstance(value, str),
        "integer": is_int,
        "number": is_int or isinstance(value, float),
        "boolean": isinstance(value, bool),
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "null": value is None,
    }
    return checks.get(expected, True)


def accepts(prop: Mapping[str, Any] | None, value: Any) -> bool:
    """Whether `value` passes a property schema's const, enum, anyOf/oneOf (any branch) or type."""
    if not isinstance(prop, Mapping):
        return True
    if "const" in prop:
        return bool(value == prop["const"])
    if "enum" in prop:
        return isinstance(prop["enum"], list) and value in prop["enum"]
    for key in ("anyOf", "oneOf"):
        if isinstance(prop.get(key), list):
            return any(accepts(sub, value) for sub in prop[key])
    return "type" not in prop or _type_matches(value, prop["type"])


def check_prefilled(
    json_schema: Mapping[str, Any] | None, tool_name: str, prefilled: Mapping[str, Any]
) -> None:
    """Raise InvalidPrefill naming every key that is unknown to the tool or has a value it refuses."""
    params = (json_schema or {}).get("parameters") or {}
    props = (params.get("properties") or {}) if isinstance(params, Mapping) else {}
    errors = []
    for key, value in prefilled.items():
        if key not in props:
            errors.append(f"Unknown argument '{key}' for tool '{tool_name}'.")
        elif not accepts(props[key], value):
            expected = props[key].get("type") if isinstance(props[key], Mapping) else None
            errors.append(
                f"Invalid value for '{key}': {value!r} does not match expected schema type {expected!r}."
            )
    if errors:
        raise InvalidPrefill("; ".join(errors))


def merge_prefilled(
    json_schema: Mapping[str, Any] | None,
    tool_name: str,
    model_args: Mapping[str, Any],
    prefilled: Mapping[str, Any],
) -> dict[str, Any]:
    """The call's arguments with the rule's on top (they win on a shared key); InvalidPrefill if they
    do not fit the tool's schema."""
    check_prefilled(json_schema, tool_name, prefilled)
    return {**model_args, **prefilled}


def prefill_error(source: str | None, exc: InvalidPrefill) -> str:
    """Letta's tool return for a refused prefill, e.g. `... from tool rules (source=InitToolRule(x)): ...`."""
    suffix = f" (source={source})" if source else ""
    return f"{INVALID_PREFILL}{suffix}: {exc}"
