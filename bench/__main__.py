"""`python -m bench [--quick] [--only turns|throughput|archival|context|api] [--worker process|inprocess]`

Starts the embedded stack in a temporary MNEMO_HOME, measures, stops everything, and prints one JSON
object on stdout (progress goes to stderr). Speed is reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import traceback
from typing import Any

from pydantic import BaseModel

from bench.stack import BenchStack, WorkerMode, open_stack
from bench.stats import machine
from mnemo.schemas.runs import RunPolicy

SECTIONS = ("turns", "throughput", "archival", "context", "api")
TARGETS = {
    "turn_1step_p50_ms": 130,
    "turn_2step_p50_ms": 260,
    "msgs_per_s": 20,
    "history_bytes_per_step": 3072,
    "archival_search_p50_ms": 20,
    "sse_first_event_p50_ms": 150,
    "get_agent_p50_ms": 5,
    "api_overhead_per_turn_ms": 10,
}


class Sizes(BaseModel):
    turns: int
    warmup: int
    agents: int
    messages: int
    passages: int
    real_embeddings: int
    queries: int
    requests: int


FULL = Sizes(
    turns=50,
    warmup=5,
    agents=10,
    messages=10,
    passages=100_000,
    real_embeddings=1000,
    queries=200,
    requests=500,
)
QUICK = Sizes(
    turns=5, warmup=2, agents=3, messages=3, passages=2000, real_embeddings=100, queries=20, requests=50
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run, figures are rough)")
    p.add_argument("--only", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    p.add_argument(
        "--worker",
        choices=["process", "inprocess"],
        default="process",
        help="worker in its own process as under `mnemo up` (default), or in this process",
    )
    p.add_argument("--turns", type=int, help="measured turns per turn kind")
    p.add_argument("--warmup", type=int, help="unmeasured turns first, per turn kind")
    p.add_argument("--agents", type=int, help="throughput: agents")
    p.add_argument("--messages", type=int, help="throughput: messages per agent")
    p.add_argument("--passages", type=int, help="archival: passages in the archive")
    p.add_argument("--real-embeddings", type=int, help="archival: passages embedded with the real model")
    p.add_argument("--queries", type=int, help="archival: timed queries")
    p.add_argument("--requests", type=int, help="api: timed GET agent requests")
    p.add_argument(
        "--profile",
        metavar="FILE",
        help="cProfile this process during the measured 1-step turns into FILE (use --worker inprocess)",
    )
    p.add_argument(
        "--temporal-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra dynamic config for the Temporal dev server (repeatable), to try a setting's effect",
    )
    p.add_argument(
        "--run-policy",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a RunPolicy field for the runs (repeatable), e.g. local_activities=false",
    )
    p.add_argument("--keep-home", action="store_true", help="keep the temporary MNEMO_HOME (logs, data)")
    return p.parse_args(argv)


def sizes_from(args: argparse.Namespace) -> Sizes:
    base = QUICK if args.quick else FULL
    overrides = {k: getattr(args, k) for k in Sizes.model_fields if getattr(args, k, None) is not None}
    return base.model_copy(update=overrides)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _short(summary: BaseModel) -> dict[str, Any]:
    data = summary.model_dump()
    return {"p50": data["p50"], "p95": data["p95"], "n": data["n"]}


async def run_turns(stack: BenchStack, sizes: Sizes, profile: str | None, result: dict[str, Any]) -> None:
    from bench.floor import measure_floor
    from bench.llmcall import measure_llm_call
    from bench.turns import ONE_STEP, TWO_STEP_MEMORY, TWO_STEP_SEARCH, measure_turns

    reports = {}
    for kind in (ONE_STEP, TWO_STEP_SEARCH, TWO_STEP_MEMORY):
        reports[kind.label] = await measure_turns(
            stack, kind, n=sizes.turns, warmup=sizes.warmup, profile=profile if kind is ONE_STEP else None
        )
    one, two = reports[ONE_STEP.label], reports[TWO_STEP_SEARCH.label]
    result["turn_1step_ms"] = _short(one.latency_ms)
    result["turn_2step_ms"] = {**_short(two.latency_ms), "tool": TWO_STEP_SEARCH.tool_name}
    result["history_bytes_per_step"] = {
        "1step": one.history_bytes_per_step,
        "2step": two.history_bytes_per_step,
    }
    result["details"]["turns"] = {k: r.model_dump() for k, r in reports.items()}
    llm = await measure_llm_call(stack, one.agent_id, n=sizes.turns)
    result["details"]["llm_call"] = llm.model_dump()
    floor = await measure_floor(stack, n=sizes.turns)
    result["details"]["temporal_floor"] = floor.model_dump()


async def run_throughput(stack: BenchStack, sizes: Sizes, result: dict[str, Any]) -> None:
    from bench.throughput import measure_throughput

    report = await measure_throughput(stack, agents=sizes.agents, messages=sizes.messages)
    result["throughput"] = {
        "agents": report.agents,
        "messages_per_agent": report.messages_per_agent,
        "msgs_per_s": report.msgs_per_s,
        "wall_s": report.wall_s,
    }
    result["details"]["throughput"] = report.model_dump()


async def run_archival(stack: BenchStack, sizes: Sizes, result: dict[str, Any]) -> None:
    from bench.archival import measure_archival

    report = await measure_archival(
        stack, passages=sizes.passages, real=sizes.real_embeddings, queries=sizes.queries
    )
    result["archival_search_ms"] = {
        "passages": report.passages,
        **_short(report.archival_search_ms),
        "vector_only_p50": report.vector_only_ms.p50,
        "fts_only_p50": report.fts_only_ms.p50,
        "embed_query_p50": report.embed_query_ms.p50,
        "synthetic_embeddings": report.load.synthetic_embeddings,
    }
    result["details"]["archival"] = report.model_dump()


async def run_api(stack: BenchStack, sizes: Sizes, result: dict[str, Any]) -> None:
    from bench.api import measure_api

    report = await measure_api(stack, turns=sizes.turns, warmup=sizes.warmup, requests=sizes.requests)
    turns = report.turns
    result["api"] = {
        "sse_first_event_ms": _short(report.sse_first_event_ms),
        "get_agent_ms": _short(report.get_agent_ms),
        "get_agent_rps": report.get_agent_rps,
        "get_agent_concurrent_rps": report.get_agent_concurrent_rps,
        "concurrent_clients": report.concurrent_clients,
        "turn_overhead_ms": {
            k: {
                "api_p50": t.api_ms.p50,
                "direct_p50": t.direct_ms.p50,
                "overhead_p50": t.overhead_p50_ms,
                "overhead_paired_p50": t.overhead_paired_ms.p50,
            }
            for k, t in turns.items()
        },
    }
    result["details"]["api"] = report.model_dump()


async def run_context(stack: BenchStack, result: dict[str, Any]) -> None:
    from bench.context import measure_context

    result["context"] = await measure_context(stack)


def against_targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    api = result.get("api", {})
    measured = {
        "turn_1step_p50_ms": result.get("turn_1step_ms", {}).get("p50"),
        "turn_2step_p50_ms": result.get("turn_2step_ms", {}).get("p50"),
        "msgs_per_s": result.get("throughput", {}).get("msgs_per_s"),
        "history_bytes_per_step": max(result["history_bytes_per_step"].values())
        if "history_bytes_per_step" in result
        else None,
        "archival_search_p50_ms": result.get("archival_search_ms", {}).get("p50"),
        "sse_first_event_p50_ms": api.get("sse_first_event_ms", {}).get("p50"),
        "get_agent_p50_ms": api.get("get_agent_ms", {}).get("p50"),
        "api_overhead_per_turn_ms": max(
            (t["overhead_p50"] for t in api.get("turn_overhead_ms", {}).values()), default=None
        ),
    }
    out = {}
    for key, target in TARGETS.items():
        value = measured[key]
        if value is None:
            continue
        met = value >= target if key == "msgs_per_s" else value <= target
        out[key] = {"measured": value, "target": target, "met": met}
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    sizes = sizes_from(args)
    sections = args.only or list(SECTIONS)
    worker: WorkerMode = args.worker
    result: dict[str, Any] = {"machine": machine(), "setup": {}, "details": {}}
    started = time.perf_counter()
    policy = RunPolicy.model_validate(dict(item.split("=", 1) for item in args.run_policy))
    async with open_stack(
        worker, keep_home=args.keep_home, temporal_config=args.temporal_config, policy=policy
    ) as stack:
        result["setup"] = {
            **stack.describe(),
            "mode": "quick" if args.quick else "full",
            "sections": sections,
            "sizes": sizes.model_dump(),
        }
        if "turns" in sections:
            await run_turns(stack, sizes, args.profile, result)
        if "throughput" in sections:
            await run_throughput(stack, sizes, result)
        if "archival" in sections:
            await run_archival(stack, sizes, result)
        if "context" in sections:
            await run_context(stack, result)
        if "api" in sections:
            await run_api(stack, sizes, result)
    result["setup"]["wall_s"] = round(time.perf_counter() - started, 1)
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["targets"] = TARGETS
    result["vs_targets"] = against_targets(result)
    order = [
        "machine",
        "setup",
        "turn_1step_ms",
        "turn_2step_ms",
        "throughput",
        "history_bytes_per_step",
        "archival_search_ms",
        "context",
        "api",
        "targets",
        "vs_targets",
        "details",
    ]
    return {key: result[key] for key in order if key in result}


def cli(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    code = 0
    try:
        result = asyncio.run(main(args))
        print(json.dumps(result, indent=2), flush=True)
    except Exception as exc:
        traceback.print_exc()
        say(f"benchmark failed: {type(exc).__name__}: {exc}")
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    # temporalio's core runtime can crash during interpreter teardown (sdk-python#300): skip it.
    os._exit(cli())
