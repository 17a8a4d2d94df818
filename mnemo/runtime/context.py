"""Context assembly: what the model sees at a step, read from Postgres.

The request is the stored system message + the in-context messages in `agents.message_ids` order +
the agent's tool schemas. Work here is O(context), never O(history).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
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


async def load_agent(session: AsyncSession, agent_id: str, *, for_update: bool = False) -> AgentRow:
    stmt = select(AgentRow).where(AgentRow.id == agent_id)
    if for_update:
        stmt = stmt.with_for_update()
    agent = (await session.exec(stmt)).one_or_none()
    if agent is None:
        raise LookupError(f"agent {agent_id} not found")
    return agent


async def load_context(session: AsyncSession, agent_id: str) -> AgentContext:
    agent = await load_agent(session, agent_id)
    rows = (await session.exec(select(MessageRow).where(col(MessageRow.id).in_(agent.message_ids)))).all()
    by_id = {r.id: r for r in rows}
    messages = [by_id[i] for i in agent.message_ids if i in by_id]
    return AgentContext(agent=agent, messages=messages, tools=await agent_tools(session, agent_id))


async def agent_tools(session: AsyncSession, agent_id: str) -> list[ToolRow]:
    """The agent's tools in the order they were attached."""
    stmt = (
        select(ToolRow)
        .join(AgentToolRow, col(AgentToolRow.tool_id) == col(ToolRow.id))
        .where(AgentToolRow.agent_id == agent_id)
        .order_by(col(AgentToolRow.created_at), col(ToolRow.name))
    )
    return list((await session.exec(stmt)).all())


def text_of(row: MessageRow) -> str:
    return "".join(p.get("text", "") for p in row.content if p.get("type") == "text")


def to_openai(row: MessageRow) -> dict[str, Any] | None:
    text = text_of(row)
    if row.role == "system":
        return {"role": "system", "content": text}
    if row.role in ("user", "summary"):
        return {"role": "user", "content": text}
    if row.role == "assistant":
        msg: dict[str, Any] = {"role": "assistant", "content": text or None}
        if row.tool_calls:
            msg["tool_calls"] = row.tool_calls
        return msg
    if row.role == "tool":
        return {"role": "tool", "tool_call_id": row.tool_call_id, "content": text}
    return None  # approvals join the context with the approval flow


async def append_to_context(session: AsyncSession, agent_id: str, message_ids: list[str]) -> None:
    """Append ids to the agent's in-context window, skipping any already there (retries)."""
    for mid in message_ids:
        await session.execute(
            sa.update(AgentRow)
            .where(AgentRow.id == agent_id, sa.not_(AgentRow.__table__.c.message_ids.has_key(mid)))  # type: ignore[attr-defined]
            .values(message_ids=AgentRow.__table__.c.message_ids.op("||")(sa.func.jsonb_build_array(mid)))  # type: ignore[attr-defined]
        )
