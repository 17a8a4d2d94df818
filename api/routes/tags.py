"""Tags (`/v1/tags`): every distinct tag on agents and blocks, in code-point order.

The cursors are tag values, not ids: `after="b"` lists the tags after "b" in the chosen order,
whether or not "b" itself is a tag.
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import session
from api.pagination import Order
from mnemo.store.tables import AgentRow, BlockRow

router = APIRouter(prefix="/tags", tags=["tags"])


@router.get("/", summary="List the tags of agents and blocks")
async def list_tags(
    after: str | None = None,
    before: str | None = None,
    limit: int = Query(50, ge=1, le=1000),
    name: str | None = Query(None, description="Only tags containing this text (case-insensitive)"),
    query_text: str | None = Query(None, deprecated=True, description="Deprecated: use `name`"),
    order: Order = "asc",
    order_by: Literal["name"] = "name",
    s: AsyncSession = Depends(session),
) -> list[str]:
    tags = sa.union(
        select(sa.func.unnest(col(AgentRow.tags)).label("tag")),
        select(sa.func.unnest(col(BlockRow.tags)).label("tag")),
    ).subquery()
    # "C" collation: plain code-point order, the same on every database whatever its locale.
    tag = tags.c.tag.collate("C")
    conds: list[Any] = [tags.c.tag.icontains(text, autoescape=True) for text in (name, query_text) if text]
    ascending = order == "asc"
    if after is not None:
        conds.append(tag > after if ascending else tag < after)
    if before is not None:
        conds.append(tag < before if ascending else tag > before)
    # With only `before`, the page is the `limit` tags just before it: read backwards, then flip.
    backwards = before is not None and after is None
    up = ascending != backwards
    stmt = select(tags.c.tag).where(*conds).order_by(tag.asc() if up else tag.desc()).limit(limit)
    rows = [str(t) for t in (await s.exec(stmt)).all()]
    return rows[::-1] if backwards else rows
