"""Where a turn's time goes, from the RunWorkflow's history and the database's timestamps.

All clocks are this machine's wall clock (client, Temporal server, worker, Postgres), so times from
the different sources can be subtracted. Activities may be regular (scheduled/started/completed
events) or local (one marker each; see `activities` for how their times are read). The segments of one
turn add up to its latency:

    client_to_run_workflow_start     send(): run row + update-with-start, the agent workflow's task,
                                     the child RunWorkflow's start
    run_start_to_first_activity      the RunWorkflow's first workflow task being dispatched, up to
                                     scheduling runs.start
    activity_queue                   regular activities: scheduled -> picked up by a worker
    runs_start_exec                  runs.start
    llm_step_exec                    llm.step (all steps)
      llm_step_inner (not additive)    of which: step row insert -> step persisted (context load,
                                       model call, persisting the reply), from the steps table
    tool_exec                        tools.execute (all calls)
    between_activities               one activity done -> the next scheduled (workflow task round trips
                                     between regular activities; 0 between local ones)
    last_activity_to_finish          up to the run's completed_at, set inside runs.finish
    finish_to_client                 runs.finish's commit -> NOTIFY -> RunService.wait returns
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory

from workflows import names

SEGMENTS: tuple[str, ...] = (
    "client_to_run_workflow_start",
    "run_start_to_first_activity",
    "activity_queue",
    "runs_start_exec",
    "llm_step_exec",
    "tool_exec",
    "between_activities",
    "last_activity_to_finish",
    "finish_to_client",
)
_EXEC_SEGMENT = {
    names.RUNS_START: "runs_start_exec",
    names.LLM_STEP: "llm_step_exec",
    names.TOOLS_EXECUTE: "tool_exec",
}


@dataclass(frozen=True)
class Activity:
    kind: str
    scheduled: float
    started: float
    completed: float


def history_bytes(history: WorkflowHistory) -> int:
    return sum(event.ByteSize() for event in history.events)


def bytes_by_event(history: WorkflowHistory) -> dict[str, int]:
    """History bytes per event type (e.g. ACTIVITY_TASK_SCHEDULED), largest first."""
    sizes: dict[str, int] = {}
    for event in history.events:
        name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")  # type: ignore[arg-type]
        sizes[name] = sizes.get(name, 0) + event.ByteSize()
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))


def _t(event: HistoryEvent) -> float:
    return float(event.event_time.ToMicroseconds()) / 1e6


def _first(events: Sequence[HistoryEvent], kind: int) -> HistoryEvent:
    for event in events:
        if event.event_type == kind:
            return event
    raise ValueError(f"history has no {EventType.Name(kind)} event")  # type: ignore[arg-type]


def _stamp(value: dict[str, Any]) -> float:
    return float(value["seconds"]) + float(value.get("nanos", 0)) / 1e9


def activities(history: WorkflowHistory) -> list[Activity]:
    """Every completed activity, regular or local, in schedule order.

    A local activity's marker has a reliable `original_schedule_time` but a `complete_time` that is not
    wall-clock time (it can precede the schedule). Local activities run one after the other inside the
    workflow task, so each is taken to end when the next activity is scheduled.
    """
    scheduled: dict[int, tuple[str, float]] = {}
    begun: dict[int, float] = {}
    found: list[tuple[str, float, float | None, float | None]] = []  # None: local, filled in below
    for event in history.events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = (attrs.activity_type.name, _t(event))
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            begun[event.activity_task_started_event_attributes.scheduled_event_id] = _t(event)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            sid = event.activity_task_completed_event_attributes.scheduled_event_id
            name, at = scheduled[sid]
            found.append((name, at, begun[sid], _t(event)))
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            payloads = event.marker_recorded_event_attributes.details.get("data")
            if payloads is None or not payloads.payloads:
                continue
            data = json.loads(payloads.payloads[0].data)
            if "activity_type" in data and data.get("original_schedule_time"):
                found.append((data["activity_type"], _stamp(data["original_schedule_time"]), None, None))
    found.sort(key=lambda f: f[1])
    out = []
    for i, (name, at, begin, end) in enumerate(found):
        if end is None:
            end = found[i + 1][1] if i + 1 < len(found) else at
        out.append(Activity(name, at, at if begin is None else begin, end))
    return out


def run_segments(
    history: WorkflowHistory,
    *,
    sent_at: float,
    done_at: float,
    finished_at: datetime,
    step_windows: Sequence[tuple[datetime, datetime]],
) -> dict[str, float]:
    """Milliseconds per segment (see the module doc) for one run.

    `sent_at` / `done_at`: wall-clock seconds when `send` was called and `wait` returned;
    `finished_at`: the run row's completed_at; `step_windows`: its steps' (created_at, completed_at).
    """
    started = _t(_first(history.events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED))
    finish = finished_at.timestamp()
    # runs.finish sets completed_at from inside; it and anything after (a callback) end the timeline.
    done = [a for a in activities(history) if a.kind != names.RUNS_FINISH and a.scheduled < finish]
    if not done:
        raise ValueError(f"{history.workflow_id} ran no activity before finishing")
    ms = 1000.0
    seg = dict.fromkeys(SEGMENTS, 0.0)
    seg["client_to_run_workflow_start"] = (started - sent_at) * ms
    seg["run_start_to_first_activity"] = (done[0].scheduled - started) * ms
    for prev, act in zip([None, *done], done, strict=False):
        seg["activity_queue"] += (act.started - act.scheduled) * ms
        key = _EXEC_SEGMENT.get(act.kind, "tool_exec")
        seg[key] += (act.completed - act.started) * ms
        if prev is not None:
            seg["between_activities"] += (act.scheduled - prev.completed) * ms
    seg["last_activity_to_finish"] = (finish - done[-1].completed) * ms
    seg["finish_to_client"] = (done_at - finish) * ms
    seg["llm_step_inner"] = sum((b - a).total_seconds() for a, b in step_windows) * ms
    return seg
