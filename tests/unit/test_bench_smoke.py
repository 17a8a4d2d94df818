"""`python -m bench` end to end at tiny sizes: the JSON has the documented shape and the runs it drove did
what they should. Speed is never asserted."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.stats import percentile, summarize

ROOT = Path(__file__).resolve().parents[2]
SMOKE_ARGS = [
    "--quick",
    "--turns", "2",
    "--warmup", "1",
    "--agents", "2",
    "--messages", "2",
    "--passages", "300",
    "--real-embeddings", "20",
    "--queries", "5",
]  # fmt: skip
SUMMARY_KEYS = {"p50", "p95", "mean", "min", "max", "n"}


def test_percentiles_match_statistics_inclusive_quantiles() -> None:
    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0]
    cuts = statistics.quantiles(values, n=20, method="inclusive")  # 5%, 10%, ..., 95%
    assert percentile(values, 50) == pytest.approx(statistics.median(values))
    assert percentile(values, 95) == pytest.approx(cuts[-1])
    summary = summarize(values)
    assert (summary.min, summary.max, summary.n) == (1.0, 9.0, 7)


@pytest.fixture(scope="module")
def bench_json() -> dict[str, Any]:
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    env.pop("DATABASE_URL", None)
    env.pop("TEMPORAL_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *SMOKE_ARGS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.mark.slow
def test_top_level_shape(bench_json: dict[str, Any]) -> None:
    for key in ("machine", "setup", "targets", "vs_targets", "details"):
        assert key in bench_json
    assert bench_json["machine"]["cores"] >= 1
    assert bench_json["setup"]["mode"] == "quick"
    assert "separate process" in bench_json["setup"]["worker"]
    assert set(bench_json["vs_targets"]) == set(bench_json["targets"])
    for name, verdict in bench_json["vs_targets"].items():
        assert isinstance(verdict["met"], bool)
        # The API's overhead is a difference of two timings: noise can make it zero or negative.
        assert verdict["measured"] > 0 or name == "api_overhead_per_turn_ms", (name, verdict)


@pytest.mark.slow
def test_turns(bench_json: dict[str, Any]) -> None:
    assert bench_json["turn_1step_ms"]["n"] == 2
    assert bench_json["turn_2step_ms"]["n"] == 2
    assert bench_json["turn_2step_ms"]["tool"] == "conversation_search"
    turns = bench_json["details"]["turns"]
    assert set(turns) == {"1step", "2step_conversation_search", "2step_memory_insert"}
    # The fake LLM's policies give exactly one model call, or a tool call then a reply.
    assert turns["1step"]["steps_per_turn"] == 1.0
    assert turns["2step_conversation_search"]["steps_per_turn"] == 2.0
    assert turns["2step_memory_insert"]["steps_per_turn"] == 2.0
    for report in turns.values():
        assert set(report["latency_ms"]) == SUMMARY_KEYS
        assert report["history_bytes_per_step"] > 0
        assert report["breakdown_p50_ms"]["llm_step_exec"] > 0
    assert turns["1step"]["breakdown_p50_ms"]["tool_exec"] == 0
    assert turns["2step_memory_insert"]["breakdown_p50_ms"]["tool_exec"] > 0
    # Every run records its steps as activities, regular (scheduled events) or local (markers).
    for report in turns.values():
        events = report["history_bytes_by_event"]
        assert "WORKFLOW_EXECUTION_STARTED" in events
        assert "ACTIVITY_TASK_SCHEDULED" in events or "MARKER_RECORDED" in events
    assert set(bench_json["history_bytes_per_step"]) == {"1step", "2step"}
    llm = bench_json["details"]["llm_call"]
    assert llm["context_messages"] >= 3 and llm["tools"] == 3
    assert llm["mnemo_client_ms"]["n"] == llm["plain_httpx_ms"]["n"] == 2
    floor = bench_json["details"]["temporal_floor"]
    assert floor["one_activity"]["latency_ms"]["n"] == floor["run_shape"]["latency_ms"]["n"] == 2


@pytest.mark.slow
def test_throughput(bench_json: dict[str, Any]) -> None:
    tp = bench_json["throughput"]
    assert (tp["agents"], tp["messages_per_agent"]) == (2, 2)
    assert tp["msgs_per_s"] > 0 and tp["wall_s"] > 0
    details = bench_json["details"]["throughput"]
    assert details["message_latency_ms"]["n"] == 4
    assert details["each_agent_in_order"] is True


@pytest.mark.slow
def test_archival(bench_json: dict[str, Any]) -> None:
    arch = bench_json["archival_search_ms"]
    assert arch["passages"] == 300 and arch["n"] == 5
    details = bench_json["details"]["archival"]
    assert details["load"]["real_embeddings"] == 20
    assert details["load"]["synthetic_embeddings"] == 280
    assert details["load"]["index_definition"].startswith("CREATE INDEX ix_passages_embedding_hnsw_384")
    assert details["vector_plan"]
    assert 0 <= details["vector_recall_at_10"] <= 1
    assert details["vector_rows_returned_p50"] > 0
