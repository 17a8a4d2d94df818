"""Workflow determinism: runs of every shape replay against today's workflow code, both freshly
recorded ones and the histories stored in tests/fixtures/histories/ (recorded by an earlier version,
as runs in flight during an upgrade would be). Real Temporal dev server, Postgres and fake LLM."""

from __future__ import annotations

import json
import os

import pytest
from temporalio.client import WorkflowHistory

from mnemo.fakellm import FakeLLM
from tests.fixtures.mnemo import TEST_POLICY, running_mnemo
from tests.replay.scenarios import HISTORIES, SCENARIOS, histories, replay

POLICIES = {
    "activities": TEST_POLICY,
    "local_activities": TEST_POLICY.model_copy(update={"local_activities": True}),
}


async def _record(temporal_env, database_url: str, fake_llm: FakeLLM, task_queue: str, mode: str):  # type: ignore[no-untyped-def]
    recorded: dict[str, list[WorkflowHistory]] = {}
    async with running_mnemo(temporal_env.client, database_url, fake_llm, task_queue, POLICIES[mode]) as m:
        for name, scenario in SCENARIOS.items():
            recorded[name] = await histories(m, await scenario(m))
    return recorded


@pytest.mark.parametrize("mode", list(POLICIES))
async def test_fresh_runs_replay(
    temporal_env, database_url: str, fake_llm: FakeLLM, task_queue: str, mode: str
) -> None:  # type: ignore[no-untyped-def]
    recorded = await _record(temporal_env, database_url, fake_llm, task_queue, mode)
    everything = [h for hs in recorded.values() for h in hs]
    assert len(everything) == 9
    await replay(everything)


def _stored() -> list[WorkflowHistory]:
    out = []
    for path in sorted(HISTORIES.glob("*.json")):
        data = json.loads(path.read_text())
        out.append(WorkflowHistory.from_json(data["workflow_id"], data["history"]))
    return out


async def test_stored_histories_replay() -> None:
    stored = _stored()
    kinds = {h.workflow_id.split(":")[0] for h in stored}
    assert len(stored) == 2 * 9 and kinds == {"run", "agent", "tool-run"}
    await replay(stored)


async def test_a_changed_workflow_does_not_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: a run's history no longer matches a workflow that calls the model
    with another activity name."""
    from workflows import names

    monkeypatch.setattr(names, "LLM_STEP", "llm.step.renamed")
    with pytest.raises(Exception, match="(?i)nondetermin|does not match|mismatch"):
        await replay([h for h in _stored() if h.workflow_id.startswith("run:")][:1])


@pytest.mark.skipif(not os.environ.get("MNEMO_RECORD_HISTORIES"), reason="records the stored histories")
@pytest.mark.parametrize("mode", list(POLICIES))
async def test_record(temporal_env, database_url: str, fake_llm: FakeLLM, task_queue: str, mode: str) -> None:  # type: ignore[no-untyped-def]
    HISTORIES.mkdir(parents=True, exist_ok=True)
    for name, hs in (await _record(temporal_env, database_url, fake_llm, task_queue, mode)).items():
        for i, h in enumerate(hs):
            payload = {"workflow_id": h.workflow_id, "history": json.loads(h.to_json())}
            (HISTORIES / f"{name}-{mode}-{i}.json").write_text(json.dumps(payload, indent=1) + "\n")
