"""Riding out a database outage while a request waits on a run.

A request that waits for a run (a sync send, an SSE stream) holds nothing in Postgres between its reads,
and the run itself goes on in Temporal while Postgres restarts. Failing the request would make clients
send the message again (Stainless clients such as letta-client retry a 5xx), starting a second run. So
a waiter takes an unreachable database as "no news yet" and reads again at its next wake-up, for up to
`grace_s` of continuous failure; then it gives up with `DatabaseUnavailable`, which names the run and is
answered without a retry.
"""

from __future__ import annotations

import time

from sqlalchemy.exc import InterfaceError, OperationalError

# What a lost or refused connection raises through SQLAlchemy + psycopg (a restarted server, a
# dropped socket, a refused connect); anything else is a bug or bad data and is not ridden out.
CONNECTION_ERRORS = (OperationalError, InterfaceError)


class DatabaseUnavailable(Exception):
    def __init__(self, run_id: str, seconds: float, cause: BaseException) -> None:
        first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        super().__init__(
            f"The database has been unreachable for {seconds:.0f} s ({first_line}). Run {run_id} was "
            f"accepted and goes on: read its result with GET /v1/runs/{run_id} (or resume its stream with "
            f"POST /v1/runs/{run_id}/stream) once the database is back. Do not send the message again."
        )
        self.run_id = run_id


class OutageClock:
    """How long one waiter's reads have failed in a row."""

    def __init__(self, run_id: str, grace_s: float) -> None:
        self.run_id = run_id
        self.grace_s = grace_s
        self.since: float | None = None

    def failed(self, exc: BaseException) -> None:
        """A read failed on the connection: raise `DatabaseUnavailable` once that has lasted too long."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
        if now - self.since > self.grace_s:
            raise DatabaseUnavailable(self.run_id, now - self.since, exc) from exc

    def recovered(self) -> None:
        self.since = None
