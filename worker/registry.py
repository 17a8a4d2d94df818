"""What a Mnemo worker runs: every workflow and activity, in one place.

Activity and workflow names are API (renaming one breaks runs in flight); they are fixed in their
`@activity.defn(name=...)` / `@workflow.defn(name=...)` declarations, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mnemo.config import Settings
from mnemo.runtime.tools import InProcessTool
from mnemo.store.db import Database


def workflows() -> Sequence[type]:
    from workflows.agent import AgentWorkflow
    from workflows.run import RunWorkflow
    from workflows.tool_run import ToolRunWorkflow

    return [AgentWorkflow, RunWorkflow, ToolRunWorkflow]


async def activities(
    settings: Settings,
    *,
    extra_tools: dict[str, InProcessTool] | None = None,
    database_url: str | None = None,
) -> tuple[Sequence[Callable[..., Any]], Callable[[], Any]]:
    """The activity callables and an async closer that releases what they hold (pools, clients)."""
    from activities.agent_loop import AgentLoopActivities
    from activities.tool_run import ToolRunActivities

    db = Database(database_url) if database_url else Database.from_settings(settings)
    loop = AgentLoopActivities(db, extra_tools)
    acts = [
        loop.runs_start,
        loop.runs_finish,
        loop.runs_callback,
        loop.llm_step,
        loop.tools_execute,
        loop.memory_compact,
        loop.approvals_deny,
        ToolRunActivities(db, extra_tools).tools_run,
    ]

    async def close() -> None:
        await db.dispose()

    return acts, close
