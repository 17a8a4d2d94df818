"""The Alembic migrations against a real Postgres + pgvector."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import mnemo.store.tables  # noqa: F401  (registers the tables)
from mnemo.config import get_settings
from mnemo.store import migrate, vector
from mnemo.store.db import normalize_url

OUR_TABLES = {
    "agents",
    "blocks",
    "agents_blocks",
    "block_history",
    "messages",
    "archives",
    "agents_archives",
    "passages",
    "tools",
    "agents_tools",
    "runs",
    "steps",
    "run_events",
}


@contextmanager
def _connect(url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def _tables(url: str) -> set[str]:
    with _connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def _indexes(url: str) -> dict[str, str]:
    with _connect(url) as conn:
        rows = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        ).fetchall()
    return {name: definition for name, definition in rows}


def test_metadata_has_the_expected_tables() -> None:
    assert set(SQLModel.metadata.tables) == OUR_TABLES


def test_upgrade_from_empty_creates_tables_indexes_and_extension(empty_database_url: str) -> None:
    assert _tables(empty_database_url) == set()
    assert migrate.current_revision(empty_database_url) is None

    migrate.upgrade(empty_database_url)

    assert _tables(empty_database_url) == OUR_TABLES | {"alembic_version"}
    assert migrate.current_revision(empty_database_url) == migrate.head_revision()
    assert migrate.is_up_to_date(empty_database_url)
    with _connect(empty_database_url) as conn:
        ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    assert ext is not None

    indexes = _indexes(empty_database_url)
    expected = {ix.name for table in SQLModel.metadata.tables.values() for ix in table.indexes}
    assert expected <= set(indexes)
    for table in ("messages", "passages"):
        for dim in vector.INDEXED_DIMS:
            definition = indexes[vector.index_name(table, dim)]
            assert "USING hnsw" in definition
            assert f"(embedding)::vector({dim})" in definition
            assert "vector_cosine_ops" in definition
            assert f"WHERE (embedding_dim = {dim})" in definition
        assert "USING gin (fts)" in indexes[f"ix_{table}_fts"]
    assert "USING gin (tags)" in indexes["ix_passages_tags"]
    assert "UNIQUE" in indexes["uq_agents_archives_one_default"]


def test_downgrade_to_base_removes_everything_and_upgrade_works_again(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url)
    migrate.downgrade(empty_database_url, "base")

    assert _tables(empty_database_url) == {"alembic_version"}
    assert migrate.current_revision(empty_database_url) is None
    # Only alembic's own primary key is left: no index, sequence or type of ours survived.
    assert set(_indexes(empty_database_url)) == {"alembic_version_pkc"}
    with _connect(empty_database_url) as conn:
        sequences = conn.execute(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
        ).fetchall()
    assert sequences == []

    migrate.upgrade(empty_database_url)
    assert _tables(empty_database_url) == OUR_TABLES | {"alembic_version"}


def test_migrated_schema_matches_the_metadata(database_url: str) -> None:
    engine = sa.create_engine(normalize_url(database_url), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            diffs = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    assert diffs == []


# Alembic does not compare CHECK constraints, index predicates or generated-column expressions.
# The catalog does: the migrated database must be identical to one built by `create_all`.
_CATALOG_QUERIES = {
    "columns": """
        SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default,
               is_identity, is_generated, generation_expression
        FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name <> 'alembic_version'
    """,
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint
        WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> 'alembic_version'
    """,
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' AND tablename <> 'alembic_version'
    """,
}


def _catalog(url: str) -> dict[str, set[tuple[object, ...]]]:
    with _connect(url) as conn:
        return {name: set(map(tuple, conn.execute(q).fetchall())) for name, q in _CATALOG_QUERIES.items()}


def test_migrated_catalog_equals_create_all(database_url: str, empty_database_url: str) -> None:
    engine = sa.create_engine(normalize_url(empty_database_url), poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
            SQLModel.metadata.create_all(conn)
    finally:
        engine.dispose()

    migrated, created = _catalog(database_url), _catalog(empty_database_url)
    for part in _CATALOG_QUERIES:
        assert migrated[part] == created[part], part
    assert len(migrated["indexes"]) > 20 and len(migrated["constraints"]) > 20


def test_concurrent_upgrades_from_several_processes(empty_database_url: str) -> None:
    # An API and workers starting together each migrate; the advisory lock serialises them.
    script = "import sys; from mnemo.store.migrate import upgrade; upgrade(sys.argv[1])"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, empty_database_url], stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert [code for code, _ in results] == [0, 0, 0], results
    assert migrate.current_revision(empty_database_url) == migrate.head_revision()


def test_upgrades_from_several_threads(empty_database_url: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate.upgrade(empty_database_url)
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert migrate.current_revision(empty_database_url) == migrate.head_revision()


def test_upgrade_without_url_uses_database_url(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    get_settings.cache_clear()
    try:
        migrate.upgrade()
        assert migrate.current_revision() == migrate.head_revision()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert migrate.current_revision(empty_database_url) == migrate.head_revision()
