"""Run a block-editing tool call by name with the model's raw JSON arguments.

Argument problems become `MemoryToolError`s worded like the TypeErrors Letta's executor returns to the
model, so a malformed call gets the same feedback. Pre-0.16 agents (and their `.af` exports) call
`memory_replace`/`memory_insert`/`memory` with `old_str`/`new_str`; those names are accepted too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mnemo.memory.edits import (
    Blocks,
    MemoryEdit,
    MemoryToolError,
    core_memory_append,
    core_memory_replace,
    memory_finish_edits,
    memory_insert,
    memory_replace,
    memory_rethink,
)
from mnemo.memory.edits_omni import memory
from mnemo.schemas.agents import DEFAULT_BLOCK_LIMIT

# name → (function, required arguments, optional arguments)
_TOOLS: dict[str, tuple[Callable[..., MemoryEdit], tuple[str, ...], tuple[str, ...]]] = {
    "core_memory_append": (core_memory_append, ("label", "content"), ()),
    "core_memory_replace": (core_memory_replace, ("label", "old_content", "new_content"), ()),
    "memory_replace": (memory_replace, ("label", "old_string", "new_string"), ()),
    "memory_insert": (memory_insert, ("label", "new_string"), ("insert_line",)),
    "memory_rethink": (memory_rethink, ("label", "new_memory"), ()),
    "memory_finish_edits": (memory_finish_edits, (), ()),
    "memory": (
        memory,
        ("command",),
        (
            "path",
            "file_text",
            "description",
            "old_string",
            "new_string",
            "insert_line",
            "insert_text",
            "old_path",
            "new_path",
        ),
    ),
}
MEMORY_TOOL_NAMES = frozenset(_TOOLS)

LEGACY_ARG_ALIASES: dict[str, dict[str, str]] = {
    "memory_replace": {"old_str": "old_string", "new_str": "new_string"},
    "memory_insert": {"new_str": "new_string"},
    "memory": {"old_str": "old_string", "new_str": "new_string"},
}
# Loop-owned arguments that may still be in the call; they are not the tool's business.
_LOOP_ARGS = frozenset({"request_heartbeat"})
_INT_ARGS = frozenset({"insert_line"})
_TAKES_DEFAULT_LIMIT = frozenset({"memory_rethink", "memory"})


def _quote_list(names: list[str]) -> str:
    quoted = [f"'{n}'" for n in names]
    if len(quoted) == 1:
        return quoted[0]
    if len(quoted) == 2:
        return f"{quoted[0]} and {quoted[1]}"
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise MemoryToolError(f"Invalid `{name}` parameter: {value!r}. It must be an integer.")


def normalize_memory_tool_args(name: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical argument names and types; drops loop-owned arguments. Raises on unknown/missing ones."""
    if name not in _TOOLS:
        raise MemoryToolError(f"Unknown function: {name}")
    _, required, optional = _TOOLS[name]
    aliases = LEGACY_ARG_ALIASES.get(name, {})
    out: dict[str, Any] = {}
    for key, value in args.items():
        if key in _LOOP_ARGS:
            continue
        canonical = aliases.get(key, key)
        if canonical != key and canonical in args:
            continue  # the current name wins over its legacy alias
        if canonical not in required and canonical not in optional:
            raise MemoryToolError(f"{name}() got an unexpected keyword argument '{key}'")
        out[canonical] = value
    missing = [arg for arg in required if out.get(arg) is None]
    if missing:
        plural = "argument" if len(missing) == 1 else "arguments"
        raise MemoryToolError(
            f"{name}() missing {len(missing)} required positional {plural}: {_quote_list(missing)}"
        )
    for key, value in list(out.items()):
        if value is None:
            del out[key]  # an explicit null means "use the default"
        elif key in _INT_ARGS:
            out[key] = _as_int(key, value)
        else:
            out[key] = str(value)
    return out


def run_memory_tool(
    name: str, blocks: Blocks, args: Mapping[str, Any], *, default_limit: int = DEFAULT_BLOCK_LIMIT
) -> MemoryEdit:
    """Execute memory tool `name` against `blocks`. Raises `MemoryToolError` with the model-facing text."""
    kwargs = normalize_memory_tool_args(name, args)
    func = _TOOLS[name][0]
    if name in _TAKES_DEFAULT_LIMIT:
        return func(blocks, **kwargs, default_limit=default_limit)
    return func(blocks, **kwargs)
