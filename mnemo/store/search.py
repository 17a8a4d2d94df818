"""Full-text and tag predicates in the shapes the GIN indexes serve.

`messages.fts` and `passages.fts` are generated `to_tsvector('english', coalesce(text, ''))`
columns (not mapped on the row classes: use `messages_fts` / `passages_fts` from
`mnemo.store.tables`). Vector search is in `mnemo.store.vector`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

TagMatchMode = Literal["any", "all"]

_CONFIG = "english"  # must be the configuration the generated columns use


def text_query(query: str) -> ColumnElement[Any]:
    """`plainto_tsquery('english', query)`: words ANDed, no operator syntax, safe for user input."""
    return sa.func.plainto_tsquery(sa.literal_column(f"'{_CONFIG}'"), query)


def fts_match(fts: ColumnElement[Any], query: str) -> ColumnElement[bool]:
    """`fts @@ plainto_tsquery('english', query)` (uses the GIN index on `fts`)."""
    return fts.op("@@")(text_query(query))  # type: ignore[no-any-return]


def fts_rank(fts: ColumnElement[Any], query: str) -> ColumnElement[float]:
    """`ts_rank_cd(fts, query)`: higher is better; for ordering matches."""
    return sa.func.ts_rank_cd(fts, text_query(query), type_=sa.Float)


def tags_match(tags: Any, wanted: Sequence[str], mode: TagMatchMode = "any") -> ColumnElement[bool]:
    """`tags && wanted` (any) or `tags @> wanted` (all), both served by a GIN index on `tags`."""
    values = list(wanted)
    if mode == "any":
        return tags.overlap(values)  # type: ignore[no-any-return]
    if mode == "all":
        return tags.contains(values)  # type: ignore[no-any-return]
    raise ValueError(f"tag match mode must be 'any' or 'all', got {mode!r}")
