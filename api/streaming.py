"""SSE streams of a run, read from its durable event log (Postgres) and woken by LISTEN/NOTIFY.

Any run's stream can be (re)read from any `seq_id`, by any API process, for as long as the run exists:
`POST /v1/runs/{id}/stream {starting_after}`. The wire format is Letta's: `data: {json}` per message, then
`stop_reason`, `usage_statistics` and `data: [DONE]`; a failure is sent as `event: error`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette.sse import EventSourceResponse, ServerSentEvent

from api.db_outage import CONNECTION_ERRORS, DatabaseUnavailable, OutageClock
from api.runs import RunService
from mnemo.runtime import events
from mnemo.runtime.runs import TERMINAL_STATUSES
from mnemo.store.tables import RunRow

PING_INTERVAL_S = 20.0  # Letta's keepalive_interval
BATCH = 500
# Types a token-streaming client already received as deltas.
STREAMED_AS_DELTAS = frozenset({"assistant_message", "reasoning_message", "tool_call_message"})
INTERNAL = frozenset({"tool_execution_started"})
# Sent whatever `include_return_message_types` says: they frame the stream rather than report a message.
ALWAYS_SENT = frozenset({"stop_reason", "usage_statistics", "error_message", "ping"})
PRIVATE_KEYS = ("delta", "attempt")


def _sse(data: str, event: str | None = None) -> ServerSentEvent:
    # Letta terminates lines with "\n" (sse-starlette's default is "\r\n").
    return ServerSentEvent(data=data, event=event, sep="\n")


def _public(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in PRIVATE_KEYS}


def wanted(event: dict[str, Any], *, stream_tokens: bool, types: set[str] | None) -> bool:
    """Whether a logged event goes to this stream. `types` (include_return_message_types) filters token
    deltas too: a partial message is of its message's type."""
    kind = event.get("message_type")
    if kind in INTERNAL:
        return False
    if types is not None and kind not in types and kind not in ALWAYS_SENT:
        return False
    if event.get("delta"):
        return stream_tokens
    return not (stream_tokens and kind in STREAMED_AS_DELTAS)


def requested_types(run: RunRow | None) -> set[str] | None:
    """The run's `include_return_message_types`, as its request gave it (None: every type)."""
    types = (run.request_config or {}).get("include_return_message_types") if run is not None else None
    return set(types) if types else None


async def tail(
    service: RunService,
    run_id: str,
    *,
    starting_after: int = 0,
    stream_tokens: bool = False,
    include_pings: bool = True,
    types: set[str] | None = None,
) -> AsyncIterator[ServerSentEvent]:
    """Every event of the run after `starting_after`, as it is written, until the run's stream ends.

    `types`: only these message types (None: those the run's request asked for, so a stream resumed
    with `POST /v1/runs/{id}/stream` is filtered as the original one was).
    """
    cursor = starting_after
    from_request = types is None
    last_sent = time.monotonic()
    outage = OutageClock(run_id, service.outage_grace_s)
    with service.waiter.subscribe(run_id) as woken:
        while True:
            batch: list[dict[str, Any]] | None = None
            try:
                async with service.db.session() as s:
                    # The run first: when it was already finished, its closing events (committed with
                    # the status) are in the read that follows, so an empty read really means the end.
                    run = await s.get(RunRow, run_id)
                    batch = await events.read(s, run_id, cursor, BATCH)
            except CONNECTION_ERRORS as exc:
                try:
                    outage.failed(exc)  # the stream stays open (and pinged) until the database is back
                except DatabaseUnavailable as gone:
                    # Not a run's error: the client resumes this stream from `cursor` later.
                    yield _sse(
                        json.dumps(
                            {
                                "message_type": "error_message",
                                "run_id": run_id,
                                "error_type": "database_unavailable",
                                "message": str(gone),
                            }
                        ),
                        "error",
                    )
                    return
            else:
                outage.recovered()
            if batch is not None:
                if from_request:
                    types, from_request = requested_types(run), False
                for event in batch:
                    cursor = int(event.get("seq_id", cursor + 1))
                    if not wanted(event, stream_tokens=stream_tokens, types=types):
                        continue
                    data = json.dumps(_public(event), ensure_ascii=False)
                    if event.get("message_type") == "error_message":
                        yield _sse(data, "error")
                    else:
                        yield _sse(data)
                    last_sent = time.monotonic()
                    if event.get("message_type") == "usage_statistics":
                        yield _sse("[DONE]")
                        return
                if batch:
                    continue
                if run is None:
                    return
                if run.status in TERMINAL_STATUSES and run.usage is not None:
                    # Finished, and its closing events were read above (or are older than the cursor).
                    yield _sse("[DONE]")
                    return
            await service.waiter.wait_event(woken)
            if include_pings and time.monotonic() - last_sent >= PING_INTERVAL_S:
                yield _sse(json.dumps({"message_type": "ping"}))
                last_sent = time.monotonic()


def sse_response(stream: AsyncIterator[ServerSentEvent]) -> EventSourceResponse:
    # Pings are Letta `ping` messages sent by `tail`; sse-starlette's comment pings are turned off.
    return EventSourceResponse(stream, ping=10**9, sep="\n", headers={"X-Accel-Buffering": "no"})
