"""Schema migrations (Alembic), shipped inside the package so an installed `mnemo` can migrate.

`database_url=None` means the configured database: DATABASE_URL, else the running embedded
Postgres. Any Postgres URL form is accepted (see `mnemo.store.db.normalize_url`).
"""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from mnemo.store.db import normalize_url, resolve_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# Alembic keeps its running context in module globals: one migration at a time per process.
# Across processes, env.py serialises them with a Postgres advisory lock.
_lock = threading.Lock()


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Through attributes, not the ini's sqlalchemy.url, which would need "%" escaped.
    config.attributes["database_url"] = database_url or resolve_url()
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    config = alembic_config(database_url)
    with _lock:
        command.upgrade(config, revision)


def downgrade(database_url: str | None = None, revision: str = "base") -> None:
    config = alembic_config(database_url)
    with _lock:
        command.downgrade(config, revision)


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration scripts in {MIGRATIONS_DIR}")
    return head


def current_revision(database_url: str | None = None) -> str | None:
    """The revision the database is at (None: never migrated)."""
    engine = sa.create_engine(normalize_url(database_url or resolve_url()), poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def is_up_to_date(database_url: str | None = None) -> bool:
    return current_revision(database_url) == head_revision()
