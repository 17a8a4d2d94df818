"""Starting a run at most once per `otid`: a retried send gets the run its first attempt started.

    run = await start_once(services, agent_id, otids, lambda: services.runs.send(...))

The answer is then built from that run as for a first attempt: a sync send waits for it and returns
the same response, an async send returns the same Run, a stream replays it from its first event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError

from api.deps import Services
from mnemo.runtime.otid import is_otid_conflict, run_for_otids
from mnemo.store.tables import RunRow


async def start_once(
    services: Services,
    agent_id: str,
    otids: list[str],
    send: Callable[[], Awaitable[RunRow]],
) -> RunRow:
    """`send()`'s run, or the run an earlier attempt with these input `otids` started. The earlier run
    is looked for first, so a retry is answered as its first attempt was even when what it answered
    (a pending approval, say) is gone by now."""
    if len(set(otids)) != len(otids):
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "messages"),
                    "msg": "each message's otid must be unique within a request",
                    "type": "value_error",
                }
            ]
        )
    earlier = await _earlier_run(services, agent_id, otids)
    if earlier is not None:
        return earlier
    try:
        return await send()
    except IntegrityError as exc:
        if not is_otid_conflict(exc):
            raise
        # A concurrent attempt of the same request inserted first: answer with its run.
        earlier = await _earlier_run(services, agent_id, otids)
        if earlier is None:
            raise
        return earlier


async def _earlier_run(services: Services, agent_id: str, otids: list[str]) -> RunRow | None:
    if not otids:
        return None
    async with services.db.session() as s:
        run = await run_for_otids(s, agent_id, otids)
    if run is not None and run.status == "failed" and run.usage is None:
        # The first attempt never reached Temporal (its submission failed, and the client was told so):
        # the retry is what hands it over, not a duplicate.
        await services.runs.resume(run.id)
        async with services.db.session() as s:
            run = await s.get(RunRow, run.id)
    return run
