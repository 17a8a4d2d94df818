"""Applying Letta's `UpdateAgent` to an agent, and recompiling its system message when the change shows there.

    async with db.transaction() as s:
        agent = await update_agent(s, agent_id, UpdateAgent(system="..."), settings)

Raises `NotFound` (404) for an unknown agent, block, tool or message id, `UpdateRejected` (422, naming
the field) for a value that cannot be applied, and `NotSupportedYet` (501) for fields of features
Mnemo does not have.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.config import Settings
from mnemo.embeddings import resolve_embedding_config
from mnemo.llm.config import resolve_llm_config
from mnemo.llm.overrides import REQUEST_TO_LLM, from_model_settings, with_overrides
from mnemo.runtime.agents import NotFound, recompile_system_message
from mnemo.runtime.context import load_agent
from mnemo.runtime.reset import check_context_editable
from mnemo.schemas.agent_update import UpdateAgent
from mnemo.store.tables import AgentBlockRow, AgentRow, AgentToolRow, BlockRow, MessageRow, ToolRow

# Copied to the row as given.
PLAIN_FIELDS: dict[str, str] = {
    "name": "name",
    "description": "description",
    "system": "system",
    "tags": "tags",
    "metadata": "metadata_",
    "timezone": "timezone",
    "message_buffer_autoclear": "message_buffer_autoclear",
    "enable_sleeptime": "enable_sleeptime",
    "compaction_settings": "compaction_settings",
    "last_run_completion": "last_run_completion",
    "last_run_duration_ms": "last_run_duration_ms",
    "last_stop_reason": "last_stop_reason",
}
# A change to any of these shows in the compiled system message (template, memory blocks, tool rules,
# time zone of the timestamps, recall count, line numbering by model provider).
RECOMPILE_FIELDS = frozenset(
    {"system", "block_ids", "tool_ids", "tool_rules", "timezone", "message_ids", "model", "llm_config"}
)
LLM_FIELDS = frozenset({"model", "llm_config", "model_settings", *REQUEST_TO_LLM})


class UpdateRejected(ValueError):
    """A value that cannot be applied; `field` names it as the request did."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class NotSupportedYet(Exception):
    """The request asks for a feature Mnemo does not have yet."""


async def update_agent(
    session: AsyncSession, agent_id: str, req: UpdateAgent, settings: Settings
) -> AgentRow:
    """Apply `req` to the agent (row-locked for the transaction) and return it. Call in a transaction."""
    unsupported = req.unsupported()
    if unsupported:
        raise NotSupportedYet(unsupported)
    agent = await load_agent(session, agent_id, for_update=True)
    given = req.given()
    if "message_ids" in given:
        await check_context_editable(session, agent.id, keeps=given["message_ids"] or ())
    for field, attr in PLAIN_FIELDS.items():
        if field in given:
            setattr(agent, attr, given[field])
    if "secrets" in given or "tool_exec_environment_variables" in given:
        agent.secrets = given.get("secrets", given.get("tool_exec_environment_variables"))
    if LLM_FIELDS & given.keys():
        _apply_llm(agent, req, given, settings)
    if "embedding" in given or "embedding_config" in given:
        _apply_embedding(agent, req, settings)
    if "tool_rules" in given:
        agent.tool_rules = [r.model_dump(exclude_none=True) for r in req.tool_rules or []]
    session.add(agent)
    await session.flush()
    if "tool_ids" in given:
        await _replace_tools(session, agent.id, given["tool_ids"])
    if "block_ids" in given:
        await _replace_blocks(session, agent.id, given["block_ids"])
    if "message_ids" in given:
        agent.message_ids = await _checked_message_ids(session, agent.id, given["message_ids"])
        session.add(agent)
        await session.flush()
    if RECOMPILE_FIELDS & given.keys():
        await recompile_system_message(session, agent)
    await session.flush()
    await session.refresh(agent)
    return agent


def _apply_llm(agent: AgentRow, req: UpdateAgent, given: dict[str, Any], settings: Settings) -> None:
    field = "llm_config" if "llm_config" in given else "model"
    try:
        if "llm_config" in given or "model" in given:
            llm = resolve_llm_config(req.model, req.llm_config, settings)
            agent.model = req.model or llm.handle
        else:
            llm = resolve_llm_config(None, agent.llm_config, settings)
        if from_model_settings(req.model_settings or {}):
            field = "model_settings"
        llm = with_overrides(llm, req.model_settings, given)
    except (ValueError, ValidationError) as exc:
        raise UpdateRejected(field, str(exc)) from exc
    agent.llm_config = llm.model_dump(mode="json")


def _apply_embedding(agent: AgentRow, req: UpdateAgent, settings: Settings) -> None:
    field = "embedding_config" if req.embedding_config is not None else "embedding"
    try:
        config = resolve_embedding_config(req.embedding, req.embedding_config, settings)
    except (ValueError, ValidationError) as exc:
        raise UpdateRejected(field, str(exc)) from exc
    agent.embedding = req.embedding or config.handle
    agent.embedding_config = config.model_dump(mode="json")


async def _replace_tools(session: AsyncSession, agent_id: str, tool_ids: list[str]) -> None:
    found = set((await session.exec(select(ToolRow.id).where(col(ToolRow.id).in_(tool_ids)))).all())
    missing = [t for t in tool_ids if t not in found]
    if missing:
        raise NotFound(f"tool_ids: tools not found: {', '.join(missing)}")
    await session.execute(
        sa.delete(AgentToolRow).where(
            col(AgentToolRow.agent_id) == agent_id, col(AgentToolRow.tool_id).not_in(tool_ids)
        )
    )
    kept = set(
        (await session.exec(select(AgentToolRow.tool_id).where(AgentToolRow.agent_id == agent_id))).all()
    )
    for tool_id in tool_ids:
        if tool_id not in kept:
            session.add(AgentToolRow(agent_id=agent_id, tool_id=tool_id))
    await session.flush()


async def _replace_blocks(session: AsyncSession, agent_id: str, block_ids: list[str]) -> None:
    rows = (await session.exec(select(BlockRow).where(col(BlockRow.id).in_(block_ids)))).all()
    by_id = {b.id: b for b in rows}
    missing = [b for b in block_ids if b not in by_id]
    if missing:
        raise NotFound(f"block_ids: blocks not found: {', '.join(missing)}")
    labels: dict[str, str] = {}
    for block_id in block_ids:
        label = by_id[block_id].label
        if label in labels:
            raise UpdateRejected(
                "block_ids",
                f"blocks {labels[label]} and {block_id} are both labelled {label!r}; "
                "an agent's block labels must be unique",
            )
        labels[label] = block_id
    await session.execute(
        sa.delete(AgentBlockRow).where(
            col(AgentBlockRow.agent_id) == agent_id, col(AgentBlockRow.block_id).not_in(block_ids)
        )
    )
    await session.flush()
    kept = set(
        (await session.exec(select(AgentBlockRow.block_id).where(AgentBlockRow.agent_id == agent_id))).all()
    )
    for block_id in block_ids:
        if block_id not in kept:
            session.add(
                AgentBlockRow(agent_id=agent_id, block_id=block_id, block_label=by_id[block_id].label)
            )
    await session.flush()


async def _checked_message_ids(session: AsyncSession, agent_id: str, message_ids: list[str]) -> list[str]:
    """The new in-context window: the agent's own messages, a system message first (it is recompiled)."""
    if not message_ids:
        raise UpdateRejected(
            "message_ids", "the in-context window must start with the agent's system message"
        )
    rows = (
        await session.exec(
            select(MessageRow.id, MessageRow.role).where(
                col(MessageRow.id).in_(message_ids), MessageRow.agent_id == agent_id
            )
        )
    ).all()
    roles = dict(rows)
    missing = [m for m in message_ids if m not in roles]
    if missing:
        raise NotFound(f"message_ids: messages not found for agent {agent_id}: {', '.join(missing)}")
    if roles[message_ids[0]] != "system":
        raise UpdateRejected(
            "message_ids",
            f"the first message must be a system message ({message_ids[0]} is a {roles[message_ids[0]]} message)",
        )
    return list(message_ids)
