"""What a Mnemo worker runs: every workflow and activity, in one place.

Activity and workflow names are API (renaming one breaks runs in flight); they are fixed in their
`@activity.defn(name=...)` / `@workflow.defn(name=...)` declarations, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mnemo.config import Settings


def workflows() -> Sequence[type]:
    return []


async def activities(settings: Settings) -> tuple[Sequence[Callable[..., Any]], Callable[[], Any]]:
    """The activity callables and an async closer that releases what they hold (pools, clients)."""

    async def close() -> None:
        return None

    return [], close
