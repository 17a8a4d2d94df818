"""Embeddings of several dimensions in one column, searched through per-dimension HNSW indexes.

A `vector` column without a dimension accepts any embedding model, but pgvector can only index a
fixed dimension. So each embedding table has a generated `embedding_dim` column and, for each common
dimension, a partial expression index:

    CREATE INDEX ... USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_dim = 384

The planner uses such an index only when a query repeats the expression and the predicate exactly,
with the dimension written as a literal (a bound `$1` cannot prove the partial-index predicate in a
generic plan). `index_for` builds the index and `nearest` builds the query from the same expression,
so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from pgvector.sqlalchemy import VECTOR
from sqlalchemy.ext.asyncio import AsyncSession as SAAsyncSession
from sqlalchemy.sql.elements import ColumnElement

# Dimensions that get an HNSW index: MiniLM / e5-small (384), BERT-base-sized models (768),
# bge-large / mxbai / cohere v3 (1024), OpenAI text-embedding-3-small / ada-002 (1536).
# pgvector's HNSW on `vector` stops at 2000 dimensions; larger embeddings are searched exactly.
INDEXED_DIMS: tuple[int, ...] = (384, 768, 1024, 1536)

S = TypeVar("S", bound=sa.Select)  # type: ignore[type-arg]

Column = sa.ColumnExpressionArgument[Any]


def embedding_dim_sql(column: str = "embedding") -> str:
    """The generated-column expression that keeps `embedding_dim` true to the stored vector."""
    return f"vector_dims({column})"


def index_name(table: str, dim: int) -> str:
    return f"ix_{table}_embedding_hnsw_{dim}"


def as_dim(embedding: Column, dim: int) -> ColumnElement[Any]:
    """`embedding::vector(dim)`: the expression the per-dimension index is built on."""
    return sa.cast(embedding, VECTOR(dim))


def dim_is(embedding_dim: Column, dim: int) -> ColumnElement[bool]:
    """`embedding_dim = <dim>` with the dimension inlined, so it matches the partial-index predicate."""
    return sa.type_coerce(embedding_dim, sa.Integer) == sa.literal_column(str(_check_dim(dim)))


def cosine_distance(embedding: Column, query: Sequence[float]) -> ColumnElement[float]:
    """Cosine distance (0 = same direction, 2 = opposite) of the stored embedding to `query`."""
    return as_dim(embedding, len(query)).cosine_distance(list(query))  # type: ignore[attr-defined, no-any-return]


def nearest(
    stmt: S,
    *,
    embedding: Column,
    embedding_dim: Column,
    query: Sequence[float],
    limit: int,
) -> S:
    """Restrict `stmt` to rows with `query`'s dimension and order it by cosine distance to `query`.

    Rows embedded with another model (another dimension) are skipped, never compared. Extra filters
    (agent, archive, tags) are applied after the HNSW scan returns its `hnsw.ef_search` candidates
    (40 by default), so a selective filter can return fewer than `limit` rows: raise it with
    `set_ef_search` for such queries.
    """
    return (
        stmt.where(dim_is(embedding_dim, len(query))).order_by(cosine_distance(embedding, query)).limit(limit)
    )


async def set_ef_search(session: SAAsyncSession, value: int) -> None:
    """Widen the HNSW candidate list for the rest of the current transaction."""
    if not 1 <= value <= 1000:
        raise ValueError(f"hnsw.ef_search must be between 1 and 1000, got {value}")
    await session.execute(sa.text(f"SET LOCAL hnsw.ef_search = {int(value)}"))


def index_for(table: sa.Table, dim: int) -> sa.Index:
    """The partial HNSW index of `table.embedding` for one dimension (defined with the table)."""
    label = f"embedding_{dim}"
    return sa.Index(
        index_name(table.name, dim),
        as_dim(table.c.embedding, dim).label(label),
        postgresql_using="hnsw",
        postgresql_ops={label: "vector_cosine_ops"},
        postgresql_where=dim_is(table.c.embedding_dim, dim),
    )


def _check_dim(dim: int) -> int:
    # The dimension is inlined into SQL, so it must be a plain positive int.
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"an embedding dimension must be a positive int, got {dim!r}")
    return dim
