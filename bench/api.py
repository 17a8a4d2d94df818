"""The HTTP API's cost, measured through the official letta-client against an API process started as
`mnemo up` starts it (its own process, on the bench stack's Temporal, Postgres, worker and fake LLM):

- time to the first SSE event of `agents.messages.stream` (a 1-step turn on the zero-latency fake);
- `agents.retrieve` latency and requests/s, sequential and with several concurrent clients (plus the
  same GET with bare httpx, to tell the server's time from the client's parsing);
- 1-step and 2-step turn latency through `agents.messages.create`, interleaved with the same turns sent
  directly (`RunService`, as bench/turns.py does), and the difference: what the API adds to a turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import warnings
from collections.abc import AsyncIterator
from typing import Any

import httpx
from letta_client import AsyncLetta
from pydantic import BaseModel

from bench.stack import HUMAN, PERSONA, BenchStack, free_port
from bench.stats import Summary, summarize
from bench.turns import ONE_STEP, TWO_STEP_SEARCH, BenchError, TurnKind, one_turn, set_policy
from mnemo.stack import launch

CONCURRENT_CLIENTS = 8
CLIENT_TIMEOUT_S = 120.0


class TurnComparison(BaseModel):
    kind: str
    api_ms: Summary
    direct_ms: Summary
    # p50(API) - p50(direct), and the same for means: the API's share of a turn.
    overhead_p50_ms: float
    overhead_mean_ms: float
    # API turn i minus the direct turn sent right after it: pairs share the machine's state of the
    # moment, so their median moves less between runs than a difference of two p50s.
    overhead_paired_ms: Summary


class ApiReport(BaseModel):
    sse_first_event_ms: Summary
    sse_complete_ms: Summary
    get_agent_ms: Summary
    get_agent_rps: float
    get_agent_concurrent_ms: Summary
    get_agent_concurrent_rps: float
    concurrent_clients: int
    get_agent_raw_http_ms: Summary
    turns: dict[str, TurnComparison]


@contextlib.asynccontextmanager
async def api_process(stack: BenchStack) -> AsyncIterator[str]:
    """`mnemo api` on a free port, wired to the stack; yields its base URL and stops it afterwards."""
    settings = stack.settings.model_copy(update={"api_host": "127.0.0.1", "api_port": free_port()})
    env = launch.child_env(settings, settings.temporal_target, stack.database_url)
    started = await asyncio.to_thread(launch.start_api, settings, env)
    try:
        yield launch.api_url(settings)
    finally:
        await asyncio.to_thread(launch.stop_started, [started], settings)


def _client(base_url: str) -> AsyncLetta:
    return AsyncLetta(base_url=base_url, max_retries=0, timeout=CLIENT_TIMEOUT_S)


def _check(stop_reason: str | None, what: str) -> None:
    if stop_reason != "end_turn":
        raise BenchError(f"{what} ended with stop_reason {stop_reason!r}")


async def _api_agent(client: AsyncLetta, stack: BenchStack, name: str) -> str:
    agent = await client.agents.create(
        name=name,
        memory_blocks=[PERSONA, HUMAN],  # type: ignore[list-item]
        llm_config={
            "model": "fake",
            "model_endpoint_type": "openai",
            "model_endpoint": stack.fake.base_url,
            "context_window": 128000,
        },
    )
    return agent.id


async def _stream_turn(client: AsyncLetta, agent_id: str, text: str) -> tuple[float, float]:
    """(ms to the first event, ms to the end of the stream) of one streamed turn."""
    first: float | None = None
    stop: str | None = None
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # `stream` is deprecated upstream, still served
        stream = await client.agents.messages.stream(agent_id, input=text)
    async for chunk in stream:
        if first is None:
            first = time.perf_counter()
        if chunk.message_type == "stop_reason":
            stop = chunk.stop_reason
    done = time.perf_counter()
    _check(stop, "a streamed turn")
    if first is None:
        raise BenchError("a streamed turn sent no event")
    return (first - t0) * 1000, (done - t0) * 1000


async def measure_sse(
    client: AsyncLetta, stack: BenchStack, *, n: int, warmup: int
) -> tuple[Summary, Summary]:
    agent_id = await _api_agent(client, stack, "bench-api-sse")
    set_policy(stack, ONE_STEP)
    for i in range(warmup):
        await _stream_turn(client, agent_id, f"warm-up {i}")
    firsts, totals = [], []
    for i in range(n):
        first, total = await _stream_turn(client, agent_id, f"message {i}")
        firsts.append(first)
        totals.append(total)
    return summarize(firsts), summarize(totals)


async def _timed_gets(client: AsyncLetta, agent_id: str, count: int) -> list[float]:
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        await client.agents.retrieve(agent_id)
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def measure_get_agent(base_url: str, agent_id: str, *, n: int, warmup: int) -> dict[str, Any]:
    client = _client(base_url)
    await _timed_gets(client, agent_id, warmup)
    t0 = time.perf_counter()
    sequential = await _timed_gets(client, agent_id, n)
    sequential_rps = n / (time.perf_counter() - t0)

    clients = [_client(base_url) for _ in range(CONCURRENT_CLIENTS)]
    per_client = max(1, n // CONCURRENT_CLIENTS)
    await asyncio.gather(*(_timed_gets(c, agent_id, 2) for c in clients))  # connections opened
    t0 = time.perf_counter()
    results = await asyncio.gather(*(_timed_gets(c, agent_id, per_client) for c in clients))
    concurrent_rps = per_client * CONCURRENT_CLIENTS / (time.perf_counter() - t0)

    raw = []
    async with httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT_S) as http:
        for i in range(warmup + n):
            t1 = time.perf_counter()
            response = await http.get(f"/v1/agents/{agent_id}")
            if response.status_code != 200:
                raise BenchError(f"GET agent answered {response.status_code}: {response.text[:200]}")
            if i >= warmup:
                raw.append((time.perf_counter() - t1) * 1000)
    for c in [client, *clients]:
        await c.close()
    return {
        "get_agent_ms": summarize(sequential),
        "get_agent_rps": round(sequential_rps, 1),
        "get_agent_concurrent_ms": summarize([x for r in results for x in r]),
        "get_agent_concurrent_rps": round(concurrent_rps, 1),
        "concurrent_clients": CONCURRENT_CLIENTS,
        "get_agent_raw_http_ms": summarize(raw),
    }


async def _api_turn(client: AsyncLetta, agent_id: str, text: str) -> float:
    t0 = time.perf_counter()
    response = await client.agents.messages.create(agent_id, input=text)
    latency = (time.perf_counter() - t0) * 1000
    _check(response.stop_reason.stop_reason, "a turn through the API")
    return latency


async def compare_turns(
    client: AsyncLetta, stack: BenchStack, kind: TurnKind, *, n: int, warmup: int
) -> TurnComparison:
    """The same turns through the API and directly, alternating, each on its own fresh agent."""
    api_agent = await _api_agent(client, stack, f"bench-api-{kind.label}")
    direct_agent = (await stack.create_agent(name=f"bench-direct-{kind.label}", tools=kind.tools)).id
    set_policy(stack, kind)
    for i in range(warmup):
        await _api_turn(client, api_agent, f"warm-up {i}")
        await one_turn(stack, direct_agent, f"warm-up {i}")
    api, direct = [], []
    for i in range(n):
        api.append(await _api_turn(client, api_agent, f"message {i}"))
        sample, _ = await one_turn(stack, direct_agent, f"message {i}")
        direct.append(sample.latency_ms)
    a, d = summarize(api), summarize(direct)
    return TurnComparison(
        kind=kind.label,
        api_ms=a,
        direct_ms=d,
        overhead_p50_ms=round(a.p50 - d.p50, 2),
        overhead_mean_ms=round(a.mean - d.mean, 2),
        overhead_paired_ms=summarize([x - y for x, y in zip(api, direct, strict=True)]),
    )


async def measure_api(stack: BenchStack, *, turns: int, warmup: int, requests: int) -> ApiReport:
    async with api_process(stack) as base_url:
        client = _client(base_url)
        try:
            first, complete = await measure_sse(client, stack, n=turns, warmup=warmup)
            say(f"api: first SSE event p50 {first.p50} ms, p95 {first.p95} ms (n={turns})")
            agent_id = await _api_agent(client, stack, "bench-api-get")
            gets = await measure_get_agent(base_url, agent_id, n=requests, warmup=warmup)
            say(f"api: GET agent p50 {gets['get_agent_ms'].p50} ms, {gets['get_agent_rps']} req/s sequential")
            compared = {}
            for kind in (ONE_STEP, TWO_STEP_SEARCH):
                compared[kind.label] = await compare_turns(client, stack, kind, n=turns, warmup=warmup)
                say(
                    f"api: {kind.label} turn p50 {compared[kind.label].api_ms.p50} ms through the API, "
                    f"{compared[kind.label].direct_ms.p50} ms direct"
                )
        finally:
            await client.close()
    return ApiReport(sse_first_event_ms=first, sse_complete_ms=complete, turns=compared, **gets)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
