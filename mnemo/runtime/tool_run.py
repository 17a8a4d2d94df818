"""One tool of an agent run with given arguments, outside any run (the `tools.run` activity behind
`POST /v1/agents/{agent_id}/tools/{tool_name}/run`).

The tool runs exactly as in a run: custom tools in their sandbox with the agent's secrets, tools the
worker provides in-process, and the built-in memory tools against Postgres. Nothing is added to the
agent's messages (Letta records nothing either); memory tools do edit memory, as in Letta.

At most once: a caller that cannot tell whether an earlier attempt started the tool says so
(`ToolRunInput.interrupted`), and a tool that is not idempotent is then not run again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mnemo.memory.edits_dispatch import MEMORY_TOOL_NAMES
from mnemo.memory.tool_schemas import TOOL_ARG_DEFAULTS
from mnemo.runtime import builtin_tools
from mnemo.runtime.agents import recompile_system_message
from mnemo.runtime.builtin_tools import ToolResult
from mnemo.runtime.context import AgentContext, load_agent, load_context
from mnemo.runtime.tools import INTERRUPTED, InProcessTool, call_in_process, run_custom_tool
from mnemo.schemas.tool_run import ToolRunInput, ToolRunOutcome
from mnemo.store.db import Database
from mnemo.store.tables import ToolRow

# The result travels through Temporal history (2 MB per payload): cap what a tool can put there.
MAX_RETURN_BYTES = 512 * 1024
MAX_STREAM_BYTES = 256 * 1024


class ToolRunNotFound(LookupError):
    """The agent does not exist, or the tool is not attached to it."""


@dataclass(frozen=True)
class AgentTool:
    ctx: AgentContext
    tool: ToolRow
    # The worker's in-process implementation, if it provides one: it takes precedence.
    extra: InProcessTool | None


def is_runnable(tool: ToolRow) -> bool:
    """Whether `tools.run` can run this tool (without worker-provided in-process tools)."""
    return tool.name in builtin_tools.NAMES or bool(tool.source_code and tool.source_type == "python")


async def find_agent_tool(
    db: Database, inp: ToolRunInput, extra_tools: dict[str, InProcessTool]
) -> AgentTool:
    """Load the agent and the tool to run. Reads only: safe to retry whatever the tool is."""
    async with db.session() as s:
        try:
            ctx = await load_context(s, inp.agent_id)
        except LookupError:
            raise ToolRunNotFound(f"Agent {inp.agent_id} not found") from None
    tool = next((t for t in ctx.tools if t.name == inp.tool_name), None)
    if tool is None:
        raise ToolRunNotFound(f"Tool {inp.tool_name!r} is not attached to agent {inp.agent_id}")
    return AgentTool(ctx, tool, extra_tools.get(tool.name))


async def run_agent_tool(db: Database, found: AgentTool, inp: ToolRunInput) -> ToolRunOutcome:
    if inp.interrupted is not None and not _idempotent(found.tool, found.extra):
        return ToolRunOutcome(status="error", func_return=f"{INTERRUPTED} ({inp.interrupted})")
    args = {k: v for k, v in inp.args.items() if k != "request_heartbeat"}
    args = {**TOOL_ARG_DEFAULTS.get(found.tool.name, {}), **{k: v for k, v in args.items() if v is not None}}
    return _outcome(await _dispatch(db, found, args))


def _idempotent(tool: ToolRow, extra: InProcessTool | None) -> bool:
    if extra is not None:
        return extra.idempotent
    if tool.name in builtin_tools.NAMES:
        return tool.name in builtin_tools.READ_ONLY
    return bool((tool.metadata_ or {}).get("idempotent"))


async def _dispatch(db: Database, found: AgentTool, args: dict[str, Any]) -> ToolResult:
    ctx, tool = found.ctx, found.tool
    if found.extra is not None:
        return await call_in_process(found.extra, args)
    if tool.name in MEMORY_TOOL_NAMES:
        return await _memory_tool(db, ctx.agent.id, tool.name, args)
    if tool.name == builtin_tools.ARCHIVAL_INSERT:
        return await _archival_insert(db, ctx, args)
    if tool.name in builtin_tools.SEARCH_TOOLS:
        return await builtin_tools.search_memory(db.session(), ctx.agent, tool.name, args)
    if tool.name == builtin_tools.SEND_MESSAGE:
        return builtin_tools.send_message()
    if tool.source_code and tool.source_type == "python":
        return await run_custom_tool(ctx, tool, args)
    # The API refuses these before starting the workflow; a tool changed since then lands here.
    return ToolResult(
        False,
        f"Error: running tool {tool.name!r} ({tool.tool_type}, {tool.source_type}) is not supported yet.",
    )


async def _memory_tool(db: Database, agent_id: str, name: str, args: dict[str, Any]) -> ToolResult:
    async with db.transaction() as s:
        agent = await load_agent(s, agent_id, for_update=True)  # one memory editor per agent at a time
        edit = await builtin_tools.memory_edit(s, agent_id, name, args)
        if edit.changed:
            await recompile_system_message(s, agent)
        return edit.result


async def _archival_insert(db: Database, ctx: AgentContext, args: dict[str, Any]) -> ToolResult:
    passage = await builtin_tools.archival_passage(ctx.agent, args)
    if isinstance(passage, ToolResult):
        return passage
    async with db.transaction() as s:
        locked = await load_agent(s, ctx.agent.id, for_update=True)
        await builtin_tools.insert_passage(s, locked, passage)
        await recompile_system_message(s, locked)
    return ToolResult(True, None)


def _clip(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    kept = data[:max_bytes].decode("utf-8", "ignore")
    return f"{kept}\n[... truncated: {len(data) - max_bytes} more bytes]"


def _bounded(value: Any) -> Any:
    """The return value as it is, unless it would not fit in a Temporal payload."""
    if isinstance(value, str):
        return _clip(value, MAX_RETURN_BYTES)
    encoded = json.dumps(value, default=str, ensure_ascii=False)
    if len(encoded.encode("utf-8", "surrogatepass")) <= MAX_RETURN_BYTES:
        return json.loads(encoded)  # JSON-safe whatever the tool returned (default=str)
    return _clip(encoded, MAX_RETURN_BYTES)


def _outcome(result: ToolResult) -> ToolRunOutcome:
    return ToolRunOutcome(
        status="success" if result.ok else "error",
        func_return=_bounded(result.value),
        stdout=[_clip(result.stdout, MAX_STREAM_BYTES)] if result.stdout else [],
        stderr=[_clip(result.stderr, MAX_STREAM_BYTES)] if result.stderr else [],
    )
