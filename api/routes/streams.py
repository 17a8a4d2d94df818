"""`POST /v1/runs/{run_id}/stream`: (re)attach to any run's stream from a `seq_id`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Services, get_services
from api.streaming import sse_response, tail
from mnemo.store.tables import RunRow

router = APIRouter(prefix="/runs", tags=["runs"])


class RetrieveStreamRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # seq_ids are 1-based Postgres INTEGERs; a cursor outside them would fail inside the already-started
    # SSE response (a broken stream, not an error the client can read).
    starting_after: int = Field(default=0, ge=0, le=2**31 - 1)
    include_pings: bool = True
    poll_interval: float | None = None  # accepted for Letta compatibility; NOTIFY wakes the stream instead
    batch_size: int | None = None


@router.post("/{run_id}/stream", summary="Stream a run's events from a seq_id (works for any run, any time)")
async def stream_run(
    run_id: str, body: RetrieveStreamRequest | None = None, services: Services = Depends(get_services)
) -> Response:
    body = body or RetrieveStreamRequest()
    async with services.db.session() as s:
        run = await s.get(RunRow, run_id)
    if run is None:
        raise HTTPException(404, f"Run {run_id} not found")
    stream_tokens = bool((run.request_config or {}).get("stream_tokens"))
    return sse_response(
        tail(
            services.runs,
            run_id,
            starting_after=body.starting_after,
            stream_tokens=stream_tokens,
            include_pings=body.include_pings,
        )
    )
