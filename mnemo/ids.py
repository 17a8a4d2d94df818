"""Letta-style identifiers: `<prefix>-<uuid4>`."""

from __future__ import annotations

import uuid
from typing import Literal

Prefix = Literal[
    "agent",
    "message",
    "run",
    "job",
    "block",
    "tool",
    "passage",
    "step",
    "archive",
    "source",
    "file",
    "provider",
    "sandbox",
    "identity",
    "conv",
    "group",
]


def new_id(prefix: Prefix) -> str:
    return f"{prefix}-{uuid.uuid4()}"


def has_prefix(value: str, prefix: Prefix) -> bool:
    head, _, rest = value.partition("-")
    if head != prefix:
        return False
    try:
        uuid.UUID(rest)
    except ValueError:
        return False
    return True
