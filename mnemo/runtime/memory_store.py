"""Applying a memory edit (computed by `mnemo.memory.edits`) to Postgres, with block history."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.ids import new_id
from mnemo.memory.edits import EditKind, MemoryEdit
from mnemo.store.tables import AgentBlockRow, BlockHistoryRow, BlockRow


async def locked_blocks(session: AsyncSession, agent_id: str) -> list[BlockRow]:
    """The agent's blocks, row-locked so concurrent editors (shared blocks) apply edits one at a time."""
    stmt = (
        select(BlockRow)
        .join(AgentBlockRow, col(AgentBlockRow.block_id) == col(BlockRow.id))
        .where(AgentBlockRow.agent_id == agent_id)
        .order_by(col(AgentBlockRow.created_at), col(BlockRow.label))
        .with_for_update(of=BlockRow)  # type: ignore[arg-type]
    )
    return list((await session.exec(stmt)).all())


def _history(block: BlockRow, actor_id: str | None, tool_call_id: str | None) -> BlockHistoryRow:
    return BlockHistoryRow(
        block_id=block.id,
        version=block.version,
        label=block.label,
        value=block.value,
        description=block.description,
        limit=block.limit,
        actor_type="agent" if actor_id else "user",
        actor_id=actor_id,
        tool_call_id=tool_call_id,
    )


async def apply_edit(
    session: AsyncSession,
    agent_id: str,
    blocks: list[BlockRow],
    edit: MemoryEdit,
    *,
    tool_call_id: str | None = None,
) -> bool:
    """Write `edit`; return True if the agent's memory changed (its system message must be recompiled)."""
    by_label = {b.label: b for b in blocks}
    if edit.kind == EditKind.NONE:
        return False
    if edit.kind == EditKind.CREATE:
        block = BlockRow(
            id=new_id("block"),
            label=edit.label or "",
            value=edit.value or "",
            limit=edit.limit or 0,
            description=edit.description,
        )
        session.add(block)
        await session.flush()
        session.add(AgentBlockRow(agent_id=agent_id, block_id=block.id, block_label=block.label))
        session.add(_history(block, agent_id, tool_call_id))
        await session.flush()
        return True
    block = by_label[edit.label or ""]
    if edit.kind == EditKind.DETACH:
        await session.execute(
            sa.delete(AgentBlockRow).where(
                col(AgentBlockRow.agent_id) == agent_id, col(AgentBlockRow.block_id) == block.id
            )
        )
        return True
    if edit.kind == EditKind.UPDATE:
        block.value = edit.value or ""
    elif edit.kind == EditKind.RELABEL:
        block.label = edit.new_label or block.label  # ON UPDATE CASCADE carries it into agents_blocks
    elif edit.kind == EditKind.DESCRIBE:
        block.description = edit.description
    block.version += 1
    session.add(block)
    session.add(_history(block, agent_id, tool_call_id))
    await session.flush()
    return True
