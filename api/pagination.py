"""Cursor pagination of list routes, as Letta does it: bare JSON arrays, `after`/`before` object ids
relative to `order`, and `limit`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from fastapi import HTTPException
from sqlmodel import SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

Order = Literal["asc", "desc"]
T = TypeVar("T")


def _cursor_missing(what: str, param: str, cursor: str) -> HTTPException:
    return HTTPException(
        404,
        f"{what} {cursor} not found: the `{param}` cursor must be the id of a {what.lower()} in this list",
    )


async def paginate(
    s: AsyncSession,
    stmt: Any,
    model: type[SQLModel],
    *,
    after: str | None,
    before: str | None,
    limit: int,
    order: str,
    what: str,
    keys: tuple[str, ...] = ("created_at", "id"),
) -> list[Any]:
    """Rows of `stmt` (a `select(model)`), ordered by `keys`, after/before the rows with those ids.

    Cursors are relative to `order`, as in Letta. The sort key ends in the id because rows made in one
    transaction share `created_at`. With only `before`, the page is the `limit` rows just before it.
    """
    cols = [col(getattr(model, k)) for k in keys]
    types = [model.__table__.c[k].type for k in keys]  # type: ignore[attr-defined]
    key = sa.tuple_(*cols)
    ascending = order == "asc"
    for cursor, param, later in ((after, "after", True), (before, "before", False)):
        if not cursor:
            continue
        anchor = (await s.exec(stmt.where(col(model.id) == cursor))).first()  # type: ignore[attr-defined]
        if anchor is None:
            raise _cursor_missing(what, param, cursor)
        value = sa.tuple_(*(sa.literal(getattr(anchor, k), t) for k, t in zip(keys, types, strict=True)))
        stmt = stmt.where(key > value if later == ascending else key < value)
    backwards = bool(before) and not after
    up = ascending != backwards
    rows = list(
        (await s.exec(stmt.order_by(*(c.asc() if up else c.desc() for c in cols)).limit(limit))).all()
    )
    return rows[::-1] if backwards else rows


def page_items(
    items: Sequence[T],
    id_of: Callable[[T], str],
    *,
    after: str | None,
    before: str | None,
    limit: int,
    order: str,
    what: str,
) -> list[T]:
    """`paginate` for short lists already in memory (an agent's blocks or tools), oldest first."""
    seq = list(items) if order == "asc" else list(items)[::-1]
    index = {id_of(x): i for i, x in enumerate(seq)}
    lo, hi = 0, len(seq)
    for cursor, param in ((after, "after"), (before, "before")):
        if cursor and cursor not in index:
            raise _cursor_missing(what, param, cursor)
    if after:
        lo = index[after] + 1
    if before:
        hi = index[before]
    window = seq[lo:hi]
    return window[-limit:] if before and not after else window[:limit]


async def message_page(
    s: AsyncSession, stmt: Any, *, after: str | None, before: str | None, limit: int, order: str
) -> list[Any]:
    """A page of messages (`stmt` selects MessageRow), in their total order `seq`."""
    from mnemo.store.tables import MessageRow

    return await paginate(
        s,
        stmt,
        MessageRow,
        after=after,
        before=before,
        limit=limit,
        order=order,
        what="Message",
        keys=("seq",),
    )
