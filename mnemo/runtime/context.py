"""Context assembly: what the model sees at a step, read from Postgres.

The request is the stored system message + the in-context messages in `agents.message_ids` order +
the agent's tool schemas. Work here is O(context), never O(history).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.memory.tool_schemas import with_request_heartbeat
from mnemo.schemas.agents import HEARTBEAT_AGENT_TYPES
from mnemo.store.tables import AgentRow, AgentToolRow, MessageRow, ToolRow
from mnemo.tools.rules import terminal_tools

_NS = uuid.UUID("8f7d4c1e-6a3b-4f0e-9c2d-5b1a7e3f9d40")


def derived_id(prefix: str, *parts: object) -> str:
    """A deterministic id: the idempotency key of work that may be retried (steps, messages)."""
    return f"{prefix}-{uuid.uuid5(_NS, ':'.join(str(p) for p in parts))}"


def step_id(run_id: str, index: int) -> str:
    return derived_id("step", run_id, index)


def assistant_message_id(run_id: str, index: int) -> str:
    return derived_id("message", run_id, "assistant", index)


def heartbeat_message_id(run_id: str, index: int) -> str:
    return derived_id("message", run_id, "heartbeat", index)


def tool_message_id(run_id: str, tool_call_id: str) -> str:
    return derived_id("message", run_id, "tool", tool_call_id)


@dataclass
class AgentContext:
    agent: AgentRow
    messages: list[MessageRow]
    tools: list[ToolRow]

    @property
    def heartbeat_mode(self) -> bool:
        return self.agent.agent_type in HEARTBEAT_AGENT_TYPES

    @property
    def terminal(self) -> frozenset[str]:
        return terminal_tools(self.agent.tool_rules)

    def tool_schemas(self) -> list[dict[str, Any]]:
        out = []
        for tool in self.tools:
            schema = tool.json_schema or {
                "name": tool.name,
                "parameters": {"type": "object", "properties": {}},
            }
            if self.heartbeat_mode and tool.name not in self.terminal:
                schema = with_request_heartbeat(schema)
            out.append({"type": "function", "function": schema})
        return out

    def openai_messages(self) -> list[dict[str, Any]]:
        return [m for m in (to_openai(row) for row in self.messages) if m is not None]


# Built once: building and hashing a statement per call costs more CPU than running it.
_AGENT = select(AgentRow).where(AgentRow.id == sa.bindparam("agent_id"))
_AGENT_FOR_UPDATE = _AGENT.with_for_update()
_MESSAGES = select(MessageRow).where(
    col(MessageRow.id) == sa.any_(sa.bindparam("ids", type_=ARRAY(sa.String)))
)
_TOOLS = (
    select(ToolRow)
    .join(AgentToolRow, col(AgentToolRow.tool_id) == col(ToolRow.id))
    .where(AgentToolRow.agent_id == sa.bindparam("agent_id"))
    .order_by(col(AgentToolRow.created_at), col(ToolRow.name))
)


# Each step reuses the agent's tool rows while a digest of them is unchanged. Postgres computes it in
# the agent's own query, over every column of every attached tool and the order they were attached
# in: a tool edited (through any path, even one that leaves `updated_at` alone), attached or detached
# is read again at the next step, by every worker.
_TOOLS_DIGEST: sa.ColumnElement[str] = sa.literal_column(
    "(SELECT md5(coalesce(string_agg(row_to_json(t)::text || at.created_at::text, ','"
    " ORDER BY at.created_at, t.name), ''))"
    " FROM agents_tools AS at JOIN tools AS t ON t.id = at.tool_id WHERE at.agent_id = agents.id)"
)
_AGENT_AND_TOOLS_DIGEST = select(AgentRow, _TOOLS_DIGEST).where(AgentRow.id == sa.bindparam("agent_id"))
TOOLS_CACHE_SIZE = 1024  # agents
_TOOLS_CACHE: OrderedDict[str, tuple[str, list[ToolRow]]] = OrderedDict()


async def load_agent(session: AsyncSession, agent_id: str, *, for_update: bool = False) -> AgentRow:
    stmt = _AGENT_FOR_UPDATE if for_update else _AGENT
    agent = (await session.exec(stmt, params={"agent_id": agent_id})).one_or_none()
    if agent is None:
        raise LookupError(f"agent {agent_id} not found")
    return agent


async def load_context(session: AsyncSession, agent_id: str) -> AgentContext:
    found = (await session.execute(_AGENT_AND_TOOLS_DIGEST, {"agent_id": agent_id})).one_or_none()
    if found is None:
        raise LookupError(f"agent {agent_id} not found")
    agent, tools_digest = found
    rows = (await session.exec(_MESSAGES, params={"ids": list(agent.message_ids)})).all()
    by_id = {r.id: r for r in rows}
    messages = [by_id[i] for i in agent.message_ids if i in by_id]
    return AgentContext(
        agent=agent, messages=messages, tools=await _cached_tools(session, agent_id, tools_digest)
    )


async def _cached_tools(session: AsyncSession, agent_id: str, digest: str) -> list[ToolRow]:
    """The agent's tools, read again only when their digest changed. The rows are detached from the
    session: shared between steps, a rollback must not expire them (they are only read)."""
    cached = _TOOLS_CACHE.get(agent_id)
    if cached is not None and cached[0] == digest:
        _TOOLS_CACHE.move_to_end(agent_id)
        return list(cached[1])
    tools = await agent_tools(session, agent_id)
    for tool in tools:
        session.expunge(tool)
    _TOOLS_CACHE[agent_id] = (digest, tools)
    _TOOLS_CACHE.move_to_end(agent_id)
    while len(_TOOLS_CACHE) > TOOLS_CACHE_SIZE:
        _TOOLS_CACHE.popitem(last=False)
    return list(tools)


async def agent_tools(session: AsyncSession, agent_id: str) -> list[ToolRow]:
    """The agent's tools in the order they were attached."""
    return list((await session.exec(_TOOLS, params={"agent_id": agent_id})).all())


def text_of(row: MessageRow) -> str:
    return "".join(p.get("text", "") for p in row.content if p.get("type") == "text")


def to_openai(row: MessageRow) -> dict[str, Any] | None:
    text = text_of(row)
    if row.role == "system":
        return {"role": "system", "content": text}
    if row.role in ("user", "summary"):
        return {"role": "user", "content": text}
    if row.role == "assistant" or (row.role == "approval" and row.tool_calls):
        # An approval request is the model's own reply; the human's answer shows as tool returns.
        msg: dict[str, Any] = {"role": "assistant", "content": text or None}
        if row.tool_calls:
            msg["tool_calls"] = row.tool_calls
        return msg
    if row.role == "tool":
        return {"role": "tool", "tool_call_id": row.tool_call_id, "content": text}
    return None  # an approval answer: the tool returns that follow it carry what was decided


# Appends the ids not in the window yet, in their order, in one statement whatever their number; an
# agent whose window has them all is not touched (a retry).
_APPEND = sa.text(
    """
    UPDATE agents SET updated_at = now(), message_ids = message_ids || (
        SELECT coalesce(jsonb_agg(given.id ORDER BY given.n), '[]'::jsonb)
        FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS given(id, n)
        WHERE NOT agents.message_ids ? given.id
    )
    WHERE id = :agent_id AND NOT message_ids ?& CAST(:ids AS text[])
    """
)


async def append_to_context(session: AsyncSession, agent_id: str, message_ids: list[str]) -> None:
    """Append ids to the agent's in-context window, skipping any already there (retries)."""
    if not message_ids:
        return
    await session.execute(_APPEND, {"agent_id": agent_id, "ids": list(dict.fromkeys(message_ids))})
    # A plain SQL statement does not update the session's copy of the agent: the next load reads it.
    loaded = session.identity_map.get(sa.inspect(AgentRow).identity_key_from_primary_key((agent_id,)))
    if loaded is not None:
        session.expire(loaded, ["message_ids", "updated_at"])
