"""SIGKILL the API process while a background run streams to a client, start a new API process, and
reattach from the last seq_id received: the client gets every event of the run exactly once, the run
completes, and what it got is what a full replay of the run's stream returns.

Why it holds: a run's events are written to Postgres by the worker, not by the API, and any API process
streams any run from any seq_id (`POST /v1/runs/{id}/stream {starting_after}`). The API holds nothing a
run needs, so killing it only breaks the connections it served.

The components: the API runs as `python -m mnemo.cli api` (as `mnemo up` runs it) so that it can be
SIGKILLed; Temporal, Postgres and the worker are the session's dev server, a database of the test's own
and a worker on the test's event loop. None of them is broken here, and a worker in the test process
lets a tool of the test's own hold the run at exact points: the kill, the outage and the reattach each
happen at a known event, without sleeping and hoping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from mnemo.fakellm import Reply
from mnemo.ids import new_id
from mnemo.runtime.tools import InProcessTool
from mnemo.store.tables import RunRow, ToolRow
from tests.chaos.api_proc import ApiProcess, SseEvent, api_env, sse_events
from tests.chaos.checks import load
from tests.fixtures.mnemo import Mnemo

pytestmark = pytest.mark.chaos

HOLD = "hold_until_released"
HOLD_SCHEMA = {
    "name": HOLD,
    "description": "Wait until the named gate is opened.",
    "parameters": {"type": "object", "properties": {"gate": {"type": "string"}}, "required": ["gate"]},
}
SLOW_S = 0.3  # each model reply takes this long: the stream trickles, as a real model's does
WAIT_S = 60.0  # bound on every wait, so a hang fails with the API's logs instead of stalling
EXPECTED_TYPES = [
    *["tool_call_message", "tool_return_message"] * 4,
    "assistant_message",
    "stop_reason",
    "usage_statistics",
]


@dataclass
class Gates:
    """Where the run stops: the `hold_until_released` tool waits, in the worker, until the test says."""

    entered: dict[str, asyncio.Event] = field(default_factory=dict)
    opened: dict[str, asyncio.Event] = field(default_factory=dict)
    all_open: bool = False

    def _get(self, table: dict[str, asyncio.Event], gate: str) -> asyncio.Event:
        event = table.setdefault(gate, asyncio.Event())
        if self.all_open and table is self.opened:
            event.set()
        return event

    async def hold(self, gate: str = "", **_: Any) -> str:
        self._get(self.entered, gate).set()
        await self._get(self.opened, gate).wait()
        return f"gate {gate} opened"

    async def reached(self, gate: str) -> None:
        await self._get(self.entered, gate).wait()

    def open(self, gate: str) -> None:
        self._get(self.opened, gate).set()

    def open_all(self) -> None:
        """Open every gate, including those the run has not reached yet."""
        self.all_open = True
        for event in self.opened.values():
            event.set()


@pytest.fixture
async def gates(mnemo: Mnemo) -> AsyncIterator[Gates]:
    gates = Gates()
    async with mnemo.db.transaction() as s:
        s.add(ToolRow(id=new_id("tool"), name=HOLD, tool_type="custom", json_schema=HOLD_SCHEMA))
    mnemo.extra_tools[HOLD] = InProcessTool(HOLD, gates.hold)
    try:
        yield gates
    finally:
        gates.open_all()  # a failed test must not leave the worker's shutdown waiting on a tool


@pytest.fixture
def api(mnemo: Mnemo, temporal_env, tmp_path: Path) -> Iterator[ApiProcess]:  # type: ignore[no-untyped-def]
    target = temporal_env.client.service_client.config.target_host
    proc = ApiProcess(tmp_path / "api", api_env(mnemo.db.url, target, mnemo.task_queue, tmp_path / "home"))
    try:
        yield proc
    finally:
        proc.stop_all()
        left = proc.leftovers()
        assert not left, f"API processes left behind: {left}"


def _tool_call(event: dict[str, Any]) -> tuple[str, str] | None:
    if event.get("message_type") != "tool_call_message":
        return None
    call = event["tool_call"]
    return call["name"], call["arguments"]


def _is_hold(event: dict[str, Any], gate: str) -> bool:
    call = _tool_call(event)
    return call is not None and call[0] == HOLD and f'"{gate}"' in call[1]


async def _entered(gates: Gates, gate: str, api: ApiProcess) -> None:
    try:
        await asyncio.wait_for(gates.reached(gate), WAIT_S)
    except TimeoutError as exc:
        raise AssertionError(f"the run never reached gate {gate}\n{api.logs()}") from exc


async def _replay(http: httpx.AsyncClient, run_id: str) -> list[SseEvent]:
    async with http.stream("POST", f"/v1/runs/{run_id}/stream", json={"starting_after": 0}) as response:
        assert response.status_code == 200, await response.aread()
        return [event async for event in sse_events(response)]


def _messages(events: list[SseEvent]) -> list[dict[str, Any]]:
    # Keepalive pings carry no seq_id and are not part of the run.
    return [e.json() for e in events if not e.done and e.json().get("message_type") != "ping"]


async def test_api_killed_mid_stream_then_reattached_delivers_every_event_once(
    mnemo: Mnemo, gates: Gates, api: ApiProcess
) -> None:
    agent = await mnemo.create_agent(memory_blocks=[{"label": "human", "value": "Name: Ada"}], tools=[HOLD])
    mnemo.fake.script(
        Reply.tool_call("conversation_search", {"query": "chess"}, delay=SLOW_S),
        Reply.tool_call(HOLD, {"gate": "one"}, delay=SLOW_S),
        Reply.tool_call("conversation_search", {"query": "go"}, delay=SLOW_S),
        Reply.tool_call(HOLD, {"gate": "two"}, delay=SLOW_S),
        Reply.text("Found both games.", delay=SLOW_S),
    )
    first_api = await asyncio.to_thread(api.start)
    first: list[SseEvent] = []
    body = {"input": "Which games do I like?", "streaming": True, "background": True}
    async with httpx.AsyncClient(base_url=api.base_url, timeout=WAIT_S) as http:
        async with http.stream("POST", f"/v1/agents/{agent.id}/messages", json=body) as response:
            assert response.status_code == 200, await response.aread()
            events = sse_events(response)
            async for event in events:
                first.append(event)
                if _is_hold(event.json(), "one"):
                    break
            # The run now waits in the tool: the API dies mid-stream, with the run far from done.
            await _entered(gates, "one", api)
            killed = await asyncio.to_thread(api.kill)
            assert killed.returncode == -9
            # Whatever the dead process had put on the wire still arrives; then the connection breaks.
            with pytest.raises(httpx.TransportError):
                async for event in events:
                    first.append(event)
        assert first and not any(e.done for e in first)
        last_seq = first[-1].json()["seq_id"]
        run_id = first[0].json()["run_id"]

        # With no API process alive, the run goes on and writes its events, until gate two.
        gates.open("one")
        await _entered(gates, "two", api)
        second_api = await asyncio.to_thread(api.start)
        assert second_api.pid != first_api.pid

        second: list[SseEvent] = []
        reattach = {"starting_after": last_seq}
        async with http.stream("POST", f"/v1/runs/{run_id}/stream", json=reattach) as response:
            assert response.status_code == 200, await response.aread()
            async for event in sse_events(response):
                second.append(event)
                if not event.done and _is_hold(event.json(), "two"):
                    gates.open("two")  # the rest of the run arrives live, on this connection
        replay = await _replay(http, run_id)
        retrieved = (await http.get(f"/v1/runs/{run_id}")).json()

    assert second[-1].done and sum(e.done for e in second) == 1, "the reattached stream must end with [DONE]"
    received = _messages(first) + _messages(second)
    seqs = [e["seq_id"] for e in received]
    print(
        f"\n[chaos] API pid {first_api.pid} killed after seq_ids {[e['seq_id'] for e in _messages(first)]}; "
        f"pid {second_api.pid} resumed with {[e['seq_id'] for e in _messages(second)]}"
    )
    assert seqs == sorted(set(seqs)), f"duplicated or out of order: {seqs}"
    assert [e["message_type"] for e in received] == EXPECTED_TYPES, received
    calls = [c for c in map(_tool_call, received) if c is not None]
    assert [name for name, _ in calls] == ["conversation_search", HOLD, "conversation_search", HOLD]
    # The reattached stream began with what was written while no API was up (gate one's return...).
    assert _messages(second)[0]["message_type"] == "tool_return_message"
    assert _messages(second)[0]["seq_id"] > last_seq

    # None missing: every event in the run's log was received, except those the API never streams.
    state = await load(mnemo.db, run_id)
    logged = [e["seq_id"] for e in state.events]
    assert logged == list(range(1, len(logged) + 1)), f"the event log is not contiguous: {logged}"
    unsent = [e for e in state.events if e["seq_id"] not in set(seqs)]
    assert {e["message_type"] for e in unsent} <= {"tool_execution_started"}, unsent
    assert len(unsent) == len(logged) - len(seqs)

    # The two connections together are exactly a fresh full replay.
    assert replay[-1].done
    assert received == _messages(replay)

    run: RunRow = state.run
    assert (run.status, run.stop_reason) == ("completed", "end_turn")
    assert (retrieved["status"], retrieved["stop_reason"]) == ("completed", "end_turn")
    assert len(mnemo.fake.chat_requests) == 5  # no step was repeated because the API died
