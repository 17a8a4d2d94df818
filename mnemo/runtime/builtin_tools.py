"""What the built-in tools do (memory edits, archival insert, conversation/archival search,
send_message), shared by the two ways a tool runs: a tool call in a run (`mnemo.runtime.tools`, which
records the return in the same transaction, once per tool call id) and a direct run of one tool
(`mnemo.runtime.tool_run`, which records nothing).

The functions work inside the caller's session, so each caller keeps its own transaction boundaries,
and leave recompiling the system message to the caller: the recompiled prompt counts the agent's
messages, so a caller that records a tool return recompiles after recording it.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.embeddings import Embedder, get_embedder
from mnemo.embeddings.config import EmbeddingConfig
from mnemo.ids import new_id
from mnemo.memory.edits import MemoryToolError
from mnemo.memory.edits_dispatch import MEMORY_TOOL_NAMES, run_memory_tool
from mnemo.runtime import search
from mnemo.runtime.agents import block_view
from mnemo.runtime.memory_store import apply_edit, locked_blocks
from mnemo.store.tables import AgentRow, PassageRow

ARCHIVAL_INSERT = "archival_memory_insert"
SEARCH_TOOLS = frozenset({"conversation_search", "archival_memory_search"})
SEND_MESSAGE = "send_message"
# Built-in tools that only read: running one twice is harmless.
READ_ONLY = SEARCH_TOOLS | {SEND_MESSAGE}
NAMES = MEMORY_TOOL_NAMES | READ_ONLY | {ARCHIVAL_INSERT}


class ToolResult:
    def __init__(self, ok: bool, value: Any, stdout: str | None = None, stderr: str | None = None) -> None:
        self.ok, self.value, self.stdout, self.stderr = ok, value, stdout, stderr


@dataclass(frozen=True)
class MemoryEditResult:
    result: ToolResult
    # The agent's memory changed: its system message must be recompiled.
    changed: bool


@dataclass(frozen=True)
class ArchivalPassage:
    content: str
    tags: list[str]
    embedding: list[float]


def embedder_for(agent: AgentRow) -> Embedder:
    return get_embedder(EmbeddingConfig.model_validate(agent.embedding_config or {}))


def send_message() -> ToolResult:
    return ToolResult(True, "Sent message successfully.")


async def memory_edit(
    s: AsyncSession, agent_id: str, name: str, args: dict[str, Any], *, tool_call_id: str | None = None
) -> MemoryEditResult:
    """Run memory tool `name` against the agent's blocks. The caller holds the agent's row lock (one
    memory editor per agent at a time); the blocks are row-locked here (shared blocks)."""
    blocks = await locked_blocks(s, agent_id)
    try:
        edit = run_memory_tool(name, [block_view(b) for b in blocks], args)
    except MemoryToolError as exc:
        return MemoryEditResult(ToolResult(False, str(exc)), changed=False)
    changed = await apply_edit(s, agent_id, blocks, edit, tool_call_id=tool_call_id)
    return MemoryEditResult(ToolResult(True, edit.tool_return), changed=changed)


async def archival_passage(agent: AgentRow, args: dict[str, Any]) -> ArchivalPassage | ToolResult:
    """The passage `archival_memory_insert` would add, embedded, or the tool's error. Called outside
    any transaction: embedding may take a while and holds no lock."""
    content = args.get("content")
    if not isinstance(content, str) or not content:
        return ToolResult(False, "archival_memory_insert() missing 1 required positional argument: 'content'")
    tags = [str(t) for t in (args.get("tags") or [])]
    embedding = (await embedder_for(agent).embed_documents([content]))[0]
    return ArchivalPassage(content=content, tags=tags, embedding=embedding)


async def insert_passage(s: AsyncSession, agent: AgentRow, passage: ArchivalPassage) -> None:
    """Add `passage` to the agent's archive; `agent` is the caller's row-locked copy."""
    archive_id = await search.default_archive_id(s, agent.id)
    s.add(
        PassageRow(
            id=new_id("passage"),
            archive_id=archive_id,
            text=passage.content,
            embedding=passage.embedding,
            embedding_config=agent.embedding_config,
            tags=passage.tags,
        )
    )
    await s.flush()


async def search_memory(
    opened: AbstractAsyncContextManager[AsyncSession], agent: AgentRow, name: str, args: dict[str, Any]
) -> ToolResult:
    """`conversation_search` or `archival_memory_search` in a session the caller opens (`opened`): a
    bad argument is the tool's error, and the session is left as the error leaves it (rolled back)."""
    try:
        async with opened as s:
            if name == "conversation_search":
                value: Any = await search.conversation_search(
                    s,
                    agent.id,
                    embedder_for(agent),
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
                    embedder_for(agent),
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
