"""The SQLModel tables. Importing this package registers all of them on `SQLModel.metadata`.

Class names end in `Row` so they never clash with the Letta wire models in `mnemo.schemas`.
There are no ORM relationships: with an `AsyncSession` a lazy load is an error, so repositories
load related rows with explicit queries.
"""

from mnemo.store.tables.agents import (
    BLOCK_ACTOR_TYPES,
    DEFAULT_BLOCK_LIMIT,
    AgentBlockRow,
    AgentRow,
    BlockHistoryRow,
    BlockRow,
)
from mnemo.store.tables.archival import AgentArchiveRow, ArchiveRow, PassageRow, passages_fts
from mnemo.store.tables.messages import MESSAGE_ROLES, MessageRow, messages_fts
from mnemo.store.tables.runs import RUN_STATUSES, STEP_STATUSES, RunEventRow, RunRow, StepRow
from mnemo.store.tables.tools import DEFAULT_RETURN_CHAR_LIMIT, AgentToolRow, ToolRow

__all__ = [
    "BLOCK_ACTOR_TYPES",
    "DEFAULT_BLOCK_LIMIT",
    "DEFAULT_RETURN_CHAR_LIMIT",
    "MESSAGE_ROLES",
    "RUN_STATUSES",
    "STEP_STATUSES",
    "AgentArchiveRow",
    "AgentBlockRow",
    "AgentRow",
    "AgentToolRow",
    "ArchiveRow",
    "BlockHistoryRow",
    "BlockRow",
    "MessageRow",
    "PassageRow",
    "RunEventRow",
    "RunRow",
    "StepRow",
    "ToolRow",
    "messages_fts",
    "passages_fts",
]
