"""`tools.run`: one tool of an agent run with given arguments, outside any run
(`POST /v1/agents/{agent_id}/tools/{tool_name}/run`, driven by `ToolRunWorkflow`). Thin: the work is
`mnemo.runtime.tool_run`; this maps its failures to what the workflow needs to know.

At most once: an attempt fails with the `ToolNotStarted` type only when it stopped before the tool
could have begun (the database was unreachable while loading the agent). For any other failure the
workflow cannot know whether the tool ran, so its next attempt carries `interrupted` and refuses to
run a tool that is not idempotent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
import sqlalchemy.exc
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.agent_loop import database_errors_retryable, heartbeating
from mnemo.runtime.tool_run import ToolRunNotFound, find_agent_tool, run_agent_tool
from mnemo.runtime.tools import InProcessTool
from mnemo.schemas.tool_run import NOT_FOUND, NOT_STARTED, ToolRunInput, ToolRunOutcome
from mnemo.store.db import Database


class ToolRunActivities:
    def __init__(self, db: Database, extra_tools: dict[str, InProcessTool] | None = None) -> None:
        self.db = db
        # The worker's own dict, not a copy: tests and embedders may register tools after start.
        self.extra_tools = extra_tools if extra_tools is not None else {}

    @activity.defn(name="tools.run")
    async def tools_run(self, inp: ToolRunInput) -> ToolRunOutcome:
        async with heartbeating():
            with _not_started():
                try:
                    found = await find_agent_tool(self.db, inp, self.extra_tools)
                except ToolRunNotFound as exc:
                    raise ApplicationError(str(exc), type=NOT_FOUND, non_retryable=True) from None
            with database_errors_retryable():
                return await run_agent_tool(self.db, found, inp)


@contextlib.contextmanager
def _not_started() -> Iterator[None]:
    """Database failures before the tool began: safe to retry whatever the tool is."""
    try:
        yield
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, psycopg.OperationalError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]
        raise ApplicationError(f"database unavailable: {first_line}", type=NOT_STARTED) from None
