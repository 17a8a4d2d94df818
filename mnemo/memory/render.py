"""What the model sees of its memory, byte for byte as Letta 0.16.8 renders it.

The compiled system message is the agent's system template with `{CORE_MEMORY}` replaced by the rendered
memory blocks (+ tool-usage rules) followed by a `<memory_metadata>` block. Tool results and heartbeats
are small JSON envelopes with a local timestamp. Everything here is pure: no clock, no database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from mnemo.schemas.agents import DEFAULT_BLOCK_LIMIT

CORE_MEMORY_PLACEHOLDER = "{CORE_MEMORY}"

# Letta's `get_local_time` / `format_datetime` format, e.g. "2025-10-31 10:56:56 PM UTC+0000".
LETTA_TIME_FORMAT = "%Y-%m-%d %I:%M:%S %p %Z%z"

CORE_MEMORY_LINE_NUMBER_WARNING = (
    "# NOTE: Line numbers shown below (with arrows like '1→') are to help during editing. "
    "Do NOT include line number prefixes in your memory edit tool calls."
)
MEMORY_BLOCKS_HEADER = (
    "<memory_blocks>\nThe following memory blocks are currently engaged in your core memory unit:\n\n"
)
TOOL_RULES_DESCRIPTION = (
    "The following constraints define rules for tool usage and guide desired behavior. These rules must be "
    "followed to ensure proper tool execution and workflow. A single response may contain multiple tool calls."
)

# Anthropic models of these types see numbered lines; nobody else does.
LINE_NUMBERED_AGENT_TYPES = frozenset({"sleeptime_agent", "memgpt_v2_agent", "letta_v1_agent"})
NO_MEMORY_BLOCK_AGENT_TYPES = frozenset({"react_agent", "workflow_agent"})

NON_USER_MSG_PREFIX = "[This is an automated system message hidden from the user] "
REQ_HEARTBEAT_MESSAGE = (
    f"{NON_USER_MSG_PREFIX}Function called using request_heartbeat=true, returning control"
)
FUNC_FAILED_HEARTBEAT_MESSAGE = f"{NON_USER_MSG_PREFIX}Function call failed, returning control"

# These search tools return their full result: the model asked for exactly that much.
UNTRUNCATED_TOOLS = frozenset({"conversation_search", "archival_memory_search"})


class BlockView(BaseModel):
    """The parts of a memory block that rendering and the edit tools need."""

    model_config = ConfigDict(frozen=True)

    label: str
    value: str = ""
    limit: int = DEFAULT_BLOCK_LIMIT
    description: str | None = None
    read_only: bool = False


# --------------------------------------------------------------------------------------------- time


def format_letta_time(moment: datetime, timezone: str | None) -> str:
    """`moment` in the agent's timezone, in Letta's format. Without a timezone, `moment`'s own zone is used."""
    if moment.tzinfo is None:
        raise ValueError("format_letta_time needs an aware datetime")
    local = moment.astimezone(ZoneInfo(timezone)) if timezone else moment
    return local.strftime(LETTA_TIME_FORMAT).strip()


# ------------------------------------------------------------------------------------- memory blocks


def _block_head(block: BlockView) -> list[str]:
    parts = [
        f"<{block.label or 'block'}>\n",
        "<description>\n",
        f"{block.description or ''}\n",
        "</description>\n",
    ]
    parts.append("<metadata>")
    if block.read_only:
        parts.append("\n- read_only=true")
    parts.append(f"\n- chars_current={len(block.value)}")
    parts.append(f"\n- chars_limit={block.limit}\n")
    parts.append("</metadata>\n")
    return parts


def render_memory_blocks(blocks: Iterable[BlockView], line_numbers: bool = False) -> str:
    """The `<memory_blocks>` section. Standard form renders nothing without blocks; the line-numbered form
    keeps its (empty) wrapper, as Letta does."""
    items = list(blocks)
    if not items and not line_numbers:
        return ""
    parts = [MEMORY_BLOCKS_HEADER]
    for idx, block in enumerate(items):
        parts.extend(_block_head(block))
        if line_numbers:
            parts.append(f"<warning>\n{CORE_MEMORY_LINE_NUMBER_WARNING}\n</warning>\n")
            parts.append("<value>\n")
            if block.value:
                parts.extend(f"{i}→ {line}\n" for i, line in enumerate(block.value.split("\n"), start=1))
        else:
            parts.append("<value>\n")
            parts.append(f"{block.value}\n")
        parts.append("</value>\n")
        parts.append(f"</{block.label or 'block'}>\n")
        if idx != len(items) - 1:
            parts.append("\n")
    parts.append("\n</memory_blocks>")
    return "".join(parts)


def render_tool_rules(rule_prompts: Sequence[str]) -> str:
    """The `<tool_usage_rules>` section (without the blank line Letta puts before it); "" without rules.

    Prompts are expected as Letta's `render_prompt()` gives them (`<tool_rule>\\n...\\n</tool_rule>`); a bare
    sentence is wrapped the same way.
    """
    prompts = [
        p if p.startswith("<tool_rule>") else f"<tool_rule>\n{p}\n</tool_rule>" for p in rule_prompts if p
    ]
    if not prompts:
        return ""
    return f"<tool_usage_rules>\n{TOOL_RULES_DESCRIPTION}\n\n" + "\n".join(prompts) + "\n</tool_usage_rules>"


def render_memory(
    blocks: Iterable[BlockView],
    *,
    line_numbers: bool = False,
    tool_rule_prompts: Sequence[str] = (),
    include_blocks: bool = True,
) -> str:
    """Letta's `Memory.compile()`: blocks, then tool rules after a blank line (folders are not rendered)."""
    text = render_memory_blocks(blocks, line_numbers) if include_blocks else ""
    rules = render_tool_rules(tool_rule_prompts)
    if rules:
        text += "\n\n" + rules
    return text


def render_memory_metadata(
    agent_id: str,
    conversation_id: str | None,
    recompiled_at: datetime,
    timezone: str | None,
    previous_message_count: int,
    archival_count: int = 0,
    archival_tags: Sequence[str] = (),
) -> str:
    lines = [
        "<memory_metadata>",
        f"- AGENT_ID: {agent_id}",
        f"- CONVERSATION_ID: {conversation_id or 'default'}",
        f"- System prompt last recompiled: {format_letta_time(recompiled_at, timezone)}",
        f"- {previous_message_count} previous messages between you and the user are stored in recall memory "
        "(use tools to access them)",
    ]
    if archival_count > 0:
        lines.append(
            f"- {archival_count} total memories you created are stored in archival memory (use tools to access them)"
        )
    if archival_tags:
        lines.append(f"- Available archival memory tags: {', '.join(archival_tags)}")
    lines.append("</memory_metadata>")
    return "\n".join(lines)


def renders_memory_blocks(agent_type: str | None) -> bool:
    return (agent_type or "").lower() not in NO_MEMORY_BLOCK_AGENT_TYPES


def uses_line_numbers(agent_type: str | None, model_endpoint_type: str | None) -> bool:
    return (agent_type or "").lower() in LINE_NUMBERED_AGENT_TYPES and model_endpoint_type == "anthropic"


def compile_system_prompt(
    system_template: str,
    blocks: Iterable[BlockView],
    *,
    agent_id: str,
    recompiled_at: datetime,
    timezone: str | None,
    conversation_id: str | None = None,
    previous_message_count: int = 0,
    archival_count: int = 0,
    archival_tags: Sequence[str] = (),
    line_numbers: bool = False,
    tool_rule_prompts: Sequence[str] = (),
    include_blocks: bool = True,
) -> str:
    """The system message: `{CORE_MEMORY}` → memory (+ rules) + "\\n\\n" + metadata; appended after "\\n\\n"
    when the template has no placeholder."""
    memory = render_memory(
        blocks, line_numbers=line_numbers, tool_rule_prompts=tool_rule_prompts, include_blocks=include_blocks
    )
    metadata = render_memory_metadata(
        agent_id,
        conversation_id,
        recompiled_at,
        timezone,
        previous_message_count,
        archival_count,
        archival_tags,
    )
    full = memory + "\n\n" + metadata
    template = system_template
    if CORE_MEMORY_PLACEHOLDER not in template:
        template += "\n\n" + CORE_MEMORY_PLACEHOLDER
    return template.replace(CORE_MEMORY_PLACEHOLDER, full)


# ----------------------------------------------------------------------------- tool returns, heartbeats


def _strip_null_bytes(value: Any) -> Any:
    # Postgres TEXT rejects NUL; Letta strips them before serializing.
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_strip_null_bytes(k): _strip_null_bytes(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strip_null_bytes(v) for v in value]
    return value


def _json_default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    raise TypeError(f"Type {type(obj)} not serializable")


def letta_json_dumps(payload: Any) -> str:
    """Letta's `json_dumps`: indent 2, non-ASCII kept, datetimes as ISO strings."""
    return json.dumps(_strip_null_bytes(payload), indent=2, ensure_ascii=False, default=_json_default)


def coerce_tool_return(value: Any) -> str:
    """A tool's return value as the string Letta puts in context: None → "None", dict → JSON, else str()."""
    if isinstance(value, str):
        return value
    if value is None:
        return "None"
    if isinstance(value, dict):
        return letta_json_dumps(value)
    return str(value)


def truncate_tool_return(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return (
        f"{text[:limit]}... [NOTE: function output was truncated since it exceeded the character limit "
        f"({len(text)} > {limit})]"
    )


def package_tool_return(
    status_ok: bool, message: str | dict[str, Any] | None, now: datetime, tz: str | None
) -> str:
    """The tool message content the model sees: `{"status": "OK"|"Failed", "message": ..., "time": ...}`."""
    return letta_json_dumps(
        {"status": "OK" if status_ok else "Failed", "message": message, "time": format_letta_time(now, tz)}
    )


def package_heartbeat(reason: str, now: datetime, tz: str | None) -> str:
    """The synthetic user message that keeps a heartbeat loop going."""
    return letta_json_dumps({"type": "heartbeat", "reason": reason, "time": format_letta_time(now, tz)})


def package_login_event(now: datetime, tz: str | None, last_login: str = "Never (first login)") -> str:
    """The user message that ends a legacy agent's boot sequence: the user just logged in."""
    return letta_json_dumps({"type": "login", "last_login": last_login, "time": format_letta_time(now, tz)})
