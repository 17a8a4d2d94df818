"""Custom Python tools in the agent loop: schema from source, run in a sandbox (bubblewrap locally,
a container through the Docker API), the agent's secrets and Letta's ids in the environment and
nothing else, errors reported to the model."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from mnemo.config import get_settings
from mnemo.fakellm import Reply
from mnemo.ids import new_id
from mnemo.store.tables import ToolRow
from mnemo.tools.schema_gen import generate_schema
from tests.fixtures.mnemo import Mnemo

SOURCE = '''
import os

def describe_env(word: str, times: int = 2) -> dict:
    """Repeat a word and show what the sandbox lets the tool see.

    Args:
        word: The word to repeat.
        times: How often.
    """
    print("visible stdout")
    return {
        "repeated": " ".join([word] * times),
        "agent": os.environ.get("LETTA_AGENT_ID"),
        "secret": os.environ.get("SERVICE_TOKEN"),
        "leaked": os.environ.get("CANARY_FROM_SERVER"),
    }
'''

FAILING = '''
def divide(a: int, b: int) -> float:
    """Divide.

    Args:
        a: numerator
        b: denominator
    """
    return a / b
'''


async def _tool(mnemo: Mnemo, source: str, metadata: dict | None = None) -> ToolRow:
    schema = generate_schema(source)
    row = ToolRow(
        id=new_id("tool"),
        name=schema["name"],
        tool_type="custom",
        source_code=source,
        json_schema=schema,
        metadata_=metadata,
    )
    async with mnemo.db.transaction() as s:
        s.add(row)
    return row


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CANARY_FROM_SERVER", "must-not-leak")
    yield


async def _returns(mnemo: Mnemo, agent_id: str) -> list[dict]:
    return [json.loads(m.content[0]["text"]) for m in await mnemo.messages(agent_id) if m.role == "tool"]


async def test_custom_tool_runs_in_the_local_sandbox(mnemo: Mnemo, canary: None) -> None:
    tool = await _tool(mnemo, SOURCE)
    agent = await mnemo.create_agent(
        memory_blocks=[], tool_ids=[tool.id], secrets={"SERVICE_TOKEN": "s3cret"}
    )
    mnemo.fake.script(Reply.tool_call("describe_env", {"word": "hi", "times": 3}), Reply.text("done"))
    run = await mnemo.send(agent.id, "go")
    assert run.stop_reason == "end_turn"
    sent_tools = {t["function"]["name"]: t["function"] for t in mnemo.fake.chat_requests[0]["tools"]}
    assert sent_tools["describe_env"]["parameters"]["required"] == ["word"]
    (ret,) = await _returns(mnemo, agent.id)
    assert ret["status"] == "OK"
    value = json.loads(ret["message"])
    assert value == {"repeated": "hi hi hi", "agent": agent.id, "secret": "s3cret", "leaked": None}
    tool_msg = [m for m in await mnemo.messages(agent.id) if m.role == "tool"][0]
    assert "visible stdout" in (tool_msg.tool_returns[0]["stdout"] or "")


async def test_a_failing_tool_is_reported_and_the_run_goes_on(mnemo: Mnemo) -> None:
    tool = await _tool(mnemo, FAILING)
    agent = await mnemo.create_agent(memory_blocks=[], tool_ids=[tool.id])
    mnemo.fake.script(Reply.tool_call("divide", {"a": 1, "b": 0}), Reply.text("cannot divide by zero"))
    run = await mnemo.send(agent.id, "1/0?")
    assert (run.status, run.stop_reason) == ("completed", "end_turn")
    (ret,) = await _returns(mnemo, agent.id)
    assert ret["status"] == "Failed" and "ZeroDivisionError" in ret["message"]


async def test_custom_tool_in_a_docker_container(
    mnemo: Mnemo, docker_base_url: str, monkeypatch: pytest.MonkeyPatch, canary: None
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_base_url)
    get_settings.cache_clear()
    try:
        tool = await _tool(mnemo, SOURCE, metadata={"sandbox": "docker"})
        agent = await mnemo.create_agent(
            memory_blocks=[], tool_ids=[tool.id], secrets={"SERVICE_TOKEN": "in-docker"}
        )
        mnemo.fake.script(Reply.tool_call("describe_env", {"word": "box"}), Reply.text("done"))
        run = await mnemo.send(agent.id, "go")
        assert run.stop_reason == "end_turn"
        (ret,) = await _returns(mnemo, agent.id)
        assert ret["status"] == "OK", ret
        assert json.loads(ret["message"]) == {
            "repeated": "box box",
            "agent": agent.id,
            "secret": "in-docker",
            "leaked": None,
        }
    finally:
        get_settings.cache_clear()
