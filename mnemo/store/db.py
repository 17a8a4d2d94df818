"""The async engine and sessions (SQLAlchemy + psycopg 3, SQLModel's `AsyncSession`).

pgvector needs no driver-level registration here: the `VECTOR` column type converts lists to and
from pgvector's text form itself. Registering psycopg adapters would also fail on any connection
opened before the first migration has created the extension, leaving the pool inconsistent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, unquote, urlencode

import pydantic_core
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.config import Settings, get_settings

_DRIVER = "postgresql+psycopg"

# Every session sees times in UTC, whatever the server's `timezone` setting.
_UTC_OPTION = "-c timezone=UTC"


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ValueError(f"not a database URL: {url!r}") from exc
    if parsed.get_backend_name() not in ("postgres", "postgresql"):
        raise ValueError(f"Mnemo needs PostgreSQL, got a {parsed.get_backend_name()!r} URL")
    # A unix-socket directory given in the host position (`postgresql://%2Ftmp%2Fpg/db`) goes in
    # the `host` query parameter, where libpq and SQLAlchemy both accept it.
    host = unquote(parsed.host) if parsed.host else None
    if host and host.startswith("/"):
        # URL.set() treats None as "unchanged", so drop the host with the NamedTuple API.
        parsed = parsed._replace(host=None).update_query_dict({"host": host})
    return parsed


def normalize_url(url: str) -> str:
    """Any Postgres URL (`postgres://`, `postgresql://`, `postgresql+driver://`, pgserver's
    `postgresql://postgres:@/postgres?host=/socket/dir`) as `postgresql+psycopg://…`.

    SQLAlchemy uses psycopg 3 for both the async engine and Alembic's sync one with this form.
    """
    return _parse(url).set(drivername=_DRIVER).render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The same database as a plain `postgresql://` URI, for psycopg.connect, psql or pg_dump."""
    return _render_libpq(_parse(url))


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database of the same server (libpq form)."""
    return _render_libpq(_parse(url).set(database=database))


def _render_libpq(parsed: URL) -> str:
    # Not URL.render_as_string: it encodes spaces in the query as "+", which libpq keeps literally.
    userinfo = ""
    if parsed.username is not None:
        userinfo = quote(parsed.username, safe="")
        if parsed.password is not None:
            userinfo += ":" + quote(str(parsed.password), safe="")
        userinfo += "@"
    hostport = parsed.host or ""
    if parsed.port is not None:
        hostport += f":{parsed.port}"
    query = urlencode(sorted(parsed.query.items()), doseq=True, quote_via=quote)
    database = quote(parsed.database or "", safe="")
    return f"postgresql://{userinfo}{hostport}/{database}" + (f"?{query}" if query else "")


def connect_args(url: str) -> dict[str, Any]:
    """psycopg connection arguments: UTC sessions, keeping any `options` the URL already has."""
    options = _parse(url).query.get("options")
    existing = options if isinstance(options, str) else " ".join(options or ())
    return {"options": f"{existing} {_UTC_OPTION}".strip()}


def _json_dumps(value: Any) -> str:
    # pydantic's encoder also takes datetimes, UUIDs and models inside JSONB values.
    return pydantic_core.to_json(value).decode()


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    return create_async_engine(
        normalize_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # A connection that died with a restarted Postgres is replaced instead of failing a query.
        pool_pre_ping=True,
        json_serializer=_json_dumps,
        connect_args=connect_args(url),
        echo=echo,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: an expired attribute would need a lazy load, which async cannot do.
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def resolve_url(settings: Settings | None = None) -> str:
    """DATABASE_URL if set, else the embedded Postgres in MNEMO_HOME if it is running."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    from mnemo.store import embedded

    uri = embedded.uri(embedded.data_dir(settings))
    if uri is None:
        raise RuntimeError(
            "no database: DATABASE_URL is not set and the embedded Postgres in "
            f"{embedded.data_dir(settings)} is not running (start it with `mnemo up`)"
        )
    return uri


class Database:
    """An engine and its session factory.

    `async with db.session() as s:` gives a session the caller commits; `async with
    db.transaction() as s:` commits on success and rolls back on error.
    """

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = normalize_url(url)
        self.engine = create_engine(url, pool_size=pool_size, echo=echo)
        self.sessionmaker = session_factory(self.engine)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Database:
        settings = settings or get_settings()
        return cls(resolve_url(settings), pool_size=settings.db_pool_size)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def ping(self) -> None:
        """Raise if the database cannot be reached (for health checks)."""
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
