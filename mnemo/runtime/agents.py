"""Creating agents and (re)compiling their system message."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.config import Settings
from mnemo.embeddings import resolve_embedding_config
from mnemo.ids import new_id
from mnemo.llm.config import resolve_llm_config
from mnemo.llm.overrides import REQUEST_TO_LLM, with_overrides
from mnemo.memory.prompts import default_system_prompt
from mnemo.memory.render import BlockView, compile_system_prompt, renders_memory_blocks, uses_line_numbers
from mnemo.runtime.initial_messages import initial_messages, put_after_system
from mnemo.schemas.agents import (
    DEFAULT_BLOCK_DESCRIPTIONS,
    HEARTBEAT_AGENT_TYPES,
    SUPPORTED_AGENT_TYPES,
    CreateAgent,
    CreateBlock,
)
from mnemo.store.tables import (
    AgentArchiveRow,
    AgentBlockRow,
    AgentRow,
    AgentToolRow,
    ArchiveRow,
    BlockRow,
    MessageRow,
    PassageRow,
    ToolRow,
)
from mnemo.tools.builtin import DEFAULT_TOOLS, ensure_builtin_tools, is_builtin
from mnemo.tools.rules import base_tool_rules, rule_prompts


class NotFound(LookupError):
    """An id or name the request referred to does not exist (the API answers 404/422)."""


async def create_agent(session: AsyncSession, req: CreateAgent, settings: Settings) -> AgentRow:
    """Create the agent, its blocks, tool links, default archive and compiled system message."""
    if req.agent_type not in SUPPORTED_AGENT_TYPES:
        raise ValueError(
            f"agent_type {req.agent_type!r} is not supported yet; use one of {', '.join(SUPPORTED_AGENT_TYPES)}"
        )
    llm = resolve_llm_config(req.model, req.llm_config, settings)
    llm = with_overrides(llm, req.model_settings, req.model_dump(include=set(REQUEST_TO_LLM)))
    embedding = resolve_embedding_config(req.embedding, req.embedding_config, settings)

    agent_id = new_id("agent")
    tool_names = list(DEFAULT_TOOLS.get(req.agent_type, ())) if req.include_base_tools else []
    rules = [r.model_dump(exclude_none=True) for r in (req.tool_rules or [])]
    if req.agent_type in HEARTBEAT_AGENT_TYPES and req.include_base_tool_rules is not False:
        ruled = {r["tool_name"] for r in rules}
        rules += [r for r in base_tool_rules(tool_names) if r["tool_name"] not in ruled]

    agent = AgentRow(
        id=agent_id,
        name=req.name or f"agent-{uuid.uuid4().hex[:8]}",
        agent_type=req.agent_type,
        system=req.system if req.system is not None else default_system_prompt(req.agent_type),
        description=req.description,
        model=req.model or llm.handle,
        embedding=req.embedding or embedding.handle,
        llm_config=llm.model_dump(mode="json"),
        embedding_config=embedding.model_dump(mode="json"),
        tool_rules=rules,
        tags=list(req.tags),
        metadata_=req.metadata,
        timezone=req.timezone or "UTC",
        message_buffer_autoclear=req.message_buffer_autoclear,
        enable_sleeptime=bool(req.enable_sleeptime),
        secrets=req.secrets or req.tool_exec_environment_variables,
        compaction_settings=req.compaction_settings,
    )
    session.add(agent)
    await session.flush()

    await _attach_blocks(session, agent_id, req)
    await _attach_tools(session, agent_id, tool_names + list(req.tools), list(req.tool_ids))
    archive = ArchiveRow(
        id=new_id("archive"), name=f"{agent.name} archival memory", embedding_config=agent.embedding_config
    )
    session.add(archive)
    await session.flush()
    session.add(AgentArchiveRow(agent_id=agent_id, archive_id=archive.id, is_default=True))

    system = MessageRow(id=new_id("message"), agent_id=agent_id, role="system", content=[], text=None)
    session.add(system)
    await session.flush()
    agent.message_ids = [system.id]
    await put_after_system(
        session, agent, initial_messages(agent, req.initial_message_sequence, datetime.now(UTC))
    )
    await recompile_system_message(session, agent)
    await session.flush()
    return agent


def new_block(spec: CreateBlock, *, description: str | None) -> BlockRow:
    """A block row for `spec`, with a new id (not yet in a session; callers check the value's limit)."""
    return BlockRow(
        id=new_id("block"),
        label=spec.label,
        value=spec.value,
        limit=spec.effective_limit(),
        description=description,
        read_only=spec.read_only,
        hidden=bool(spec.hidden),
        is_template=spec.is_template,
        template_name=spec.template_name,
        preserve_on_migration=bool(spec.preserve_on_migration),
        metadata_=spec.metadata,
        tags=list(spec.tags or []),
    )


async def _attach_blocks(session: AsyncSession, agent_id: str, req: CreateAgent) -> None:
    labels: set[str] = set()
    for spec in req.memory_blocks:
        if spec.label in labels:
            raise ValueError(
                f"duplicate memory block label {spec.label!r}: an agent's block labels must be unique"
            )
        labels.add(spec.label)
        block = new_block(spec, description=spec.description or DEFAULT_BLOCK_DESCRIPTIONS.get(spec.label))
        if len(block.value) > block.limit:
            raise ValueError(
                f"memory block {spec.label!r} is {len(block.value)} characters, over its limit of {block.limit}"
            )
        session.add(block)
        await session.flush()
        session.add(AgentBlockRow(agent_id=agent_id, block_id=block.id, block_label=block.label))
    for block_id in req.block_ids:
        row = await session.get(BlockRow, block_id)
        if row is None:
            raise NotFound(f"block {block_id} not found")
        if row.label in labels:
            raise ValueError(f"block {block_id} has label {row.label!r}, which the agent already has")
        labels.add(row.label)
        session.add(AgentBlockRow(agent_id=agent_id, block_id=row.id, block_label=row.label))
    await session.flush()


async def _attach_tools(session: AsyncSession, agent_id: str, names: list[str], ids: list[str]) -> None:
    builtin = [n for n in dict.fromkeys(names) if is_builtin(n)]
    tool_ids = list(await ensure_builtin_tools(session, builtin)) if builtin else []
    custom = [n for n in dict.fromkeys(names) if not is_builtin(n)]
    if custom:
        found = (await session.exec(select(ToolRow).where(col(ToolRow.name).in_(custom)))).all()
        missing = sorted(set(custom) - {t.name for t in found})
        if missing:
            raise NotFound(f"tools not found by name: {', '.join(missing)}")
        tool_ids += [t.id for t in found]
    for tool_id in ids:
        if await session.get(ToolRow, tool_id) is None:
            raise NotFound(f"tool {tool_id} not found")
        tool_ids.append(tool_id)
    for tool_id in dict.fromkeys(tool_ids):
        session.add(AgentToolRow(agent_id=agent_id, tool_id=tool_id))
    await session.flush()


async def agent_blocks(session: AsyncSession, agent_id: str) -> list[BlockRow]:
    stmt = (
        select(BlockRow)
        .join(AgentBlockRow, col(AgentBlockRow.block_id) == col(BlockRow.id))
        .where(AgentBlockRow.agent_id == agent_id)
        .order_by(col(AgentBlockRow.created_at), col(BlockRow.label))
    )
    return list((await session.exec(stmt)).all())


def block_view(row: BlockRow) -> BlockView:
    return BlockView(
        label=row.label,
        value=row.value,
        limit=row.limit,
        description=row.description,
        read_only=row.read_only,
    )


async def recompile_system_message(
    session: AsyncSession, agent: AgentRow, *, update_timestamp: bool = True, dry_run: bool = False
) -> str:
    """Rebuild the system message from the current blocks and counts, as Letta does after memory edits.

    Normal steps do not call this: a stable system prompt keeps the provider's prefix cache warm.
    `update_timestamp=False` keeps the "last recompiled" time the prompt showed (Letta's recompile
    route default); `dry_run` returns the text without storing it.
    """
    await session.refresh(agent)  # bulk updates in this transaction (message_ids) expired it
    recompiled_at = datetime.now(UTC)
    if not update_timestamp:
        # The system message is only ever written here, so its updated_at is the last recompile.
        previous = (
            await session.exec(select(MessageRow.updated_at).where(MessageRow.id == agent.message_ids[0]))
        ).one_or_none()
        if previous is not None:
            recompiled_at = previous
    blocks = await agent_blocks(session, agent.id)
    total = (
        await session.exec(
            select(sa.func.count()).select_from(MessageRow).where(MessageRow.agent_id == agent.id)
        )
    ).one()
    archival_count, archival_tags = await _archival_stats(session, agent.id)
    endpoint_type = (agent.llm_config or {}).get("model_endpoint_type")
    text = compile_system_prompt(
        agent.system,
        [block_view(b) for b in blocks],
        agent_id=agent.id,
        recompiled_at=recompiled_at,
        timezone=agent.timezone,
        previous_message_count=max(0, int(total) - len(agent.message_ids)),
        archival_count=archival_count,
        archival_tags=archival_tags,
        line_numbers=uses_line_numbers(agent.agent_type, endpoint_type),
        tool_rule_prompts=rule_prompts(agent.tool_rules),
        include_blocks=renders_memory_blocks(agent.agent_type),
    )
    if dry_run:
        return text
    await session.execute(
        sa.update(MessageRow)
        .where(col(MessageRow.id) == agent.message_ids[0])
        .values(content=[{"type": "text", "text": text}], text=text, updated_at=recompiled_at)
    )
    return text


async def _archival_stats(session: AsyncSession, agent_id: str) -> tuple[int, list[str]]:
    archive_ids = select(AgentArchiveRow.archive_id).where(AgentArchiveRow.agent_id == agent_id)
    count = (
        await session.exec(
            select(sa.func.count()).select_from(PassageRow).where(col(PassageRow.archive_id).in_(archive_ids))
        )
    ).one()
    if not count:
        return 0, []
    tag = sa.func.unnest(PassageRow.tags).label("tag")  # type: ignore[arg-type]
    tags_q = sa.select(tag).where(col(PassageRow.archive_id).in_(archive_ids)).distinct().order_by(tag)
    tags = [t for (t,) in (await session.execute(tags_q)).all()]
    return int(count), tags
