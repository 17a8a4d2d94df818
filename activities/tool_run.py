"""`tools.run`: one tool of an agent run with given arguments, outside any run
(`POST /v1/agents/{agent_id}/tools/{tool_name}/run`, driven by `ToolRunWorkflow`).

The tool runs exactly as in a run: custom tools in their sandbox with the agent's secrets, tools the
worker provides in-process, and the built-in memory tools against Postgres. Nothing is added to the
agent's messages (Letta records nothing either); memory tools do edit memory, as in Letta.

At most once: an attempt fails with the `ToolNotStarted` type only when it stopped before the tool
could have begun (the database was unreachable while loading the agent). For any other failure the
workflow cannot know whether the tool ran, so its next attempt carries `interrupted` and refuses to
run a tool that is not idempotent.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any, Literal

import psycopg
import sqlalchemy.exc
from pydantic import Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.agent_loop import database_errors_retryable, heartbeating
from mnemo.embeddings import get_embedder
from mnemo.embeddings.config import EmbeddingConfig
from mnemo.ids import new_id
from mnemo.memory.edits import MemoryToolError
from mnemo.memory.edits_dispatch import MEMORY_TOOL_NAMES, run_memory_tool
from mnemo.memory.tool_schemas import TOOL_ARG_DEFAULTS
from mnemo.runtime import search
from mnemo.runtime.agents import block_view, recompile_system_message
from mnemo.runtime.context import AgentContext, load_agent, load_context
from mnemo.runtime.memory_store import apply_edit, locked_blocks
from mnemo.runtime.tools import INTERRUPTED, InProcessTool, ToolResult, run_custom_tool
from mnemo.schemas.runs import Payload, RunPolicy
from mnemo.store.db import Database
from mnemo.store.tables import AgentRow, PassageRow, ToolRow

NOT_STARTED = "ToolNotStarted"
NOT_FOUND = "NotFound"
# Built-in tools that only read: running one twice is harmless.
READ_ONLY_BUILTINS = frozenset({"conversation_search", "archival_memory_search", "send_message"})
BUILTINS = MEMORY_TOOL_NAMES | READ_ONLY_BUILTINS | {"archival_memory_insert"}
# The result travels through Temporal history (2 MB per payload): cap what a tool can put there.
MAX_RETURN_BYTES = 512 * 1024
MAX_STREAM_BYTES = 256 * 1024


class ToolRunInput(Payload):
    agent_id: str
    tool_name: str
    args: dict[str, Any] = Field(default_factory=dict)
    policy: RunPolicy = Field(default_factory=RunPolicy)
    # Set by the workflow after an attempt that may have started the tool: why that attempt failed.
    interrupted: str | None = None


class ToolRunOutcome(Payload):
    """Letta's `ToolExecutionResult` (without `agent_state` and the sandbox fingerprint)."""

    status: Literal["success", "error"]
    func_return: Any = None
    stdout: list[str] = Field(default_factory=list)
    stderr: list[str] = Field(default_factory=list)


def is_runnable(tool: ToolRow) -> bool:
    """Whether `tools.run` can run this tool (without worker-provided in-process tools)."""
    return tool.name in BUILTINS or bool(tool.source_code and tool.source_type == "python")


class ToolRunActivities:
    def __init__(self, db: Database, extra_tools: dict[str, InProcessTool] | None = None) -> None:
        self.db = db
        # The worker's own dict, not a copy: tests and embedders may register tools after start.
        self.extra_tools = extra_tools if extra_tools is not None else {}

    @activity.defn(name="tools.run")
    async def tools_run(self, inp: ToolRunInput) -> ToolRunOutcome:
        async with heartbeating():
            return await run_agent_tool(self.db, inp, self.extra_tools)


@contextlib.contextmanager
def _not_started() -> Iterator[None]:
    """Database failures before the tool began: safe to retry whatever the tool is."""
    try:
        yield
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, psycopg.OperationalError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]
        raise ApplicationError(f"database unavailable: {first_line}", type=NOT_STARTED) from None


async def run_agent_tool(
    db: Database, inp: ToolRunInput, extra_tools: dict[str, InProcessTool]
) -> ToolRunOutcome:
    with _not_started():
        async with db.session() as s:
            try:
                ctx = await load_context(s, inp.agent_id)
            except LookupError:
                raise ApplicationError(
                    f"Agent {inp.agent_id} not found", type=NOT_FOUND, non_retryable=True
                ) from None
    tool = next((t for t in ctx.tools if t.name == inp.tool_name), None)
    if tool is None:
        raise ApplicationError(
            f"Tool {inp.tool_name!r} is not attached to agent {inp.agent_id}",
            type=NOT_FOUND,
            non_retryable=True,
        )
    extra = extra_tools.get(tool.name)
    if inp.interrupted is not None and not _idempotent(tool, extra):
        return ToolRunOutcome(status="error", func_return=f"{INTERRUPTED} ({inp.interrupted})")
    args = {k: v for k, v in inp.args.items() if k != "request_heartbeat"}
    args = {**TOOL_ARG_DEFAULTS.get(tool.name, {}), **{k: v for k, v in args.items() if v is not None}}
    with database_errors_retryable():
        result = await _dispatch(db, ctx, tool, extra, args)
    return _outcome(result)


def _idempotent(tool: ToolRow, extra: InProcessTool | None) -> bool:
    if extra is not None:
        return extra.idempotent
    if tool.name in BUILTINS:
        return tool.name in READ_ONLY_BUILTINS
    return bool((tool.metadata_ or {}).get("idempotent"))


async def _dispatch(
    db: Database, ctx: AgentContext, tool: ToolRow, extra: InProcessTool | None, args: dict[str, Any]
) -> ToolResult:
    if extra is not None:
        try:
            return ToolResult(True, await extra.func(**args))
        except Exception as exc:  # the tool's own error is its result, as in a run
            return ToolResult(False, f"{type(exc).__name__}: {exc}")
    if tool.name in MEMORY_TOOL_NAMES:
        return await _memory_tool(db, ctx.agent.id, tool.name, args)
    if tool.name == "archival_memory_insert":
        return await _archival_insert(db, ctx.agent, args)
    if tool.name in ("conversation_search", "archival_memory_search"):
        return await _search(db, ctx.agent, tool.name, args)
    if tool.name == "send_message":
        return ToolResult(True, "Sent message successfully.")
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
        blocks = await locked_blocks(s, agent_id)
        try:
            edit = run_memory_tool(name, [block_view(b) for b in blocks], args)
        except MemoryToolError as exc:
            return ToolResult(False, str(exc))
        if await apply_edit(s, agent_id, blocks, edit):
            await recompile_system_message(s, agent)
        return ToolResult(True, edit.tool_return)


def _embedder(agent: AgentRow):  # type: ignore[no-untyped-def]
    return get_embedder(EmbeddingConfig.model_validate(agent.embedding_config or {}))


async def _archival_insert(db: Database, agent: AgentRow, args: dict[str, Any]) -> ToolResult:
    content = args.get("content")
    if not isinstance(content, str) or not content:
        return ToolResult(False, "archival_memory_insert() missing 1 required positional argument: 'content'")
    tags = [str(t) for t in (args.get("tags") or [])]
    embedding = (await _embedder(agent).embed_documents([content]))[0]
    async with db.transaction() as s:
        locked = await load_agent(s, agent.id, for_update=True)
        s.add(
            PassageRow(
                id=new_id("passage"),
                archive_id=await search.default_archive_id(s, agent.id),
                text=content,
                embedding=embedding,
                embedding_config=locked.embedding_config,
                tags=tags,
            )
        )
        await s.flush()
        await recompile_system_message(s, locked)
    return ToolResult(True, None)


async def _search(db: Database, agent: AgentRow, name: str, args: dict[str, Any]) -> ToolResult:
    try:
        async with db.session() as s:
            if name == "conversation_search":
                value: Any = await search.conversation_search(
                    s,
                    agent.id,
                    _embedder(agent),
                    query=args.get("query"),
                    roles=args.get("roles"),
                    limit=int(args.get("limit") or 5),
                    start_date=args.get("start_date"),
                    end_date=args.get("end_date"),
                    tz=agent.timezone,
                )
            else:
                if not args.get("query"):
                    raise ValueError(
                        "archival_memory_search() missing 1 required positional argument: 'query'"
                    )
                value = await search.archival_search(
                    s,
                    agent.id,
                    _embedder(agent),
                    query=str(args["query"]),
                    tags=args.get("tags"),
                    tag_match_mode=str(args.get("tag_match_mode") or "any"),
                    top_k=int(args.get("top_k") or 5),
                    start_datetime=args.get("start_datetime"),
                    end_datetime=args.get("end_datetime"),
                    tz=agent.timezone,
                )
    except (ValueError, TypeError) as exc:
        return ToolResult(False, str(exc))
    return ToolResult(True, value)


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
