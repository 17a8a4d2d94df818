"""Column helpers shared by the tables.

Every time is a `TIMESTAMPTZ` filled by the server (`now()`), and the mappers fetch server-side
values back with `RETURNING` (`eager_defaults`), so an object is complete after a flush and never
needs a lazy load (which an `AsyncSession` cannot do implicitly).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pgvector.sqlalchemy import VECTOR
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlmodel import Field, SQLModel

from mnemo.store import vector

MAPPER_ARGS: dict[str, Any] = {"eager_defaults": True}

FTS_SQL = "to_tsvector('english', coalesce(text, ''))"


class CreatedAt(SQLModel):
    # Typed `datetime`: None only before the first flush, after which RETURNING fills it.
    created_at: datetime = Field(
        default=None,
        sa_type=sa.DateTime(timezone=True),
        nullable=False,
        sa_column_kwargs={"server_default": sa.func.now()},
    )


class Timestamps(CreatedAt):
    updated_at: datetime = Field(
        default=None,
        sa_type=sa.DateTime(timezone=True),
        nullable=False,
        sa_column_kwargs={"server_default": sa.func.now(), "onupdate": sa.func.now()},
    )


def jsonb(default_factory: Callable[[], Any] | None = None, *, server_default: str | None = None) -> Any:
    """A JSONB field: NOT NULL with a default when `default_factory` is given, else nullable.

    JSONB values are replaced, not mutated in place: the ORM does not see `row.x["k"] = v`.
    """
    if default_factory is None:
        return Field(default=None, sa_type=JSONB, nullable=True)
    kwargs = {"server_default": sa.text(f"'{server_default}'::jsonb")} if server_default else {}
    return Field(default_factory=default_factory, sa_type=JSONB, nullable=False, sa_column_kwargs=kwargs)


def metadata_field() -> Any:
    # `metadata` is taken by SQLModel/SQLAlchemy on the class, so the attribute is `metadata_`.
    return Field(default=None, sa_type=JSONB, nullable=True, sa_column_kwargs={"name": "metadata"})


def tags_field() -> Any:
    return Field(
        default_factory=list,
        sa_type=ARRAY(sa.Text),
        nullable=False,
        sa_column_kwargs={"server_default": sa.text("'{}'::text[]")},
    )


def text_field(default: str | None = None, *, nullable: bool = False) -> Any:
    """A TEXT field: nullable, or NOT NULL and required, or NOT NULL with a (server) default."""
    if nullable:
        return Field(default=None, sa_type=sa.Text, nullable=True)
    if default is None:
        return Field(sa_type=sa.Text, nullable=False)
    return Field(
        default=default, sa_type=sa.Text, nullable=False, sa_column_kwargs={"server_default": default}
    )


def bool_field(default: bool = False) -> Any:
    return Field(
        default=default,
        nullable=False,
        sa_column_kwargs={"server_default": sa.true() if default else sa.false()},
    )


def embedding_field() -> Any:
    return Field(default=None, sa_type=VECTOR, nullable=True)


def embedding_dim_field() -> Any:
    # Generated, so it can never disagree with the vector the HNSW partial indexes cast.
    return Field(
        default=None,
        nullable=True,
        sa_column_args=[sa.Computed(vector.embedding_dim_sql(), persisted=True)],
    )


def check_in(column: str, values: Iterable[str], name: str) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=name)


def add_search_columns(table: sa.Table) -> sa.Column[Any]:
    """Add the generated `fts` column with its GIN index, plus the per-dimension HNSW indexes.

    `fts` is part of the table but not of the mapped class: loading a tsvector with every row would
    only cost bandwidth. Query it as `Row.__table__.c.fts` (see `mnemo.store.fts`).
    """
    fts = sa.Column("fts", TSVECTOR, sa.Computed(FTS_SQL, persisted=True), nullable=True)
    table.append_column(fts)
    sa.Index(f"ix_{table.name}_fts", fts, postgresql_using="gin")
    for dim in vector.INDEXED_DIMS:
        vector.index_for(table, dim)
    return fts
