"""Migration 0003 on a database that already holds what it forbids: messages repeating an otid (retried
sends from before de-duplication existed). The first keeps its otid, the copies lose theirs, and from then
on the index refuses a repeat."""

from __future__ import annotations

import psycopg
import pytest

from mnemo.store import migrate


def _insert(conn: psycopg.Connection, message_id: str, agent_id: str, otid: str | None) -> None:
    conn.execute(
        "INSERT INTO messages (id, agent_id, role, otid) VALUES (%s, %s, 'user', %s)",
        (message_id, agent_id, otid),
    )


def test_upgrade_keeps_the_first_of_repeated_otids(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url, "0002")
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        for agent_id in ("agent-a", "agent-b"):
            conn.execute("INSERT INTO agents (id, name) VALUES (%s, %s)", (agent_id, agent_id))
        _insert(conn, "message-1", "agent-a", "o1")
        _insert(conn, "message-2", "agent-a", "o1")  # a retry that made a second run
        _insert(conn, "message-3", "agent-a", "o1")
        _insert(conn, "message-4", "agent-b", "o1")  # another agent's otid is its own
        _insert(conn, "message-5", "agent-a", None)
        _insert(conn, "message-6", "agent-a", None)

    migrate.upgrade(empty_database_url)

    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT id, otid FROM messages ORDER BY seq").fetchall()
        assert rows == [
            ("message-1", "o1"),
            ("message-2", None),
            ("message-3", None),
            ("message-4", "o1"),
            ("message-5", None),
            ("message-6", None),
        ]
        with pytest.raises(psycopg.errors.UniqueViolation, match="uq_messages_agent_otid"):
            _insert(conn, "message-7", "agent-a", "o1")
    migrate.downgrade(empty_database_url, "0002")
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        _insert(conn, "message-7", "agent-a", "o1")  # no index any more
