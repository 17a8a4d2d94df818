"""messages (agent_id, otid) unique where otid is set: a retried send (same otid) reuses its first run.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Before this revision a retried send made a second run with the same otid. The first message
    # keeps it; later copies lose it (the otid is a client's retry key, not content), so the index
    # can be built on any existing database.
    op.execute(
        """
        UPDATE messages SET otid = NULL
        WHERE otid IS NOT NULL AND id IN (
            SELECT id FROM (
                SELECT id, row_number() OVER (PARTITION BY agent_id, otid ORDER BY seq) AS n
                FROM messages WHERE otid IS NOT NULL
            ) ranked
            WHERE n > 1
        )
        """
    )
    op.create_index(
        "uq_messages_agent_otid",
        "messages",
        ["agent_id", "otid"],
        unique=True,
        postgresql_where=sa.text("otid IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_messages_agent_otid", table_name="messages")
