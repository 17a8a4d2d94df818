"""`client.agents.tools.run(tool_name, agent_id=, args=)` through the official letta-client: the tool
runs on the worker (a `ToolRunWorkflow`), in its sandbox, with the agent's secrets, once.

The side-effect test uses the local sandbox without bubblewrap (`isolation="none"`, a plain subprocess
as a throwaway uid): bubblewrap's and Docker's sandboxes let a tool write nowhere the host can see,
which is their point, so a file written through the agent's secrets can only be observed there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from letta_client import AsyncLetta, InternalServerError, NotFoundError, UnprocessableEntityError

from mnemo.sandbox import select
from mnemo.sandbox.local import LocalSandbox
from tests.fixtures.api_server import ApiServer
from tests.fixtures.mnemo import Mnemo

RECORD_VISIT = '''
import os

def record_visit(name: str, times: int = 1) -> dict:
    """Write one line per visit into the visits file and say who saw what.

    Args:
        name: Who visits.
        times: How many lines to write.
    """
    with open(os.path.join(os.environ["VISITS_DIR"], "visits.log"), "a") as fh:
        for _ in range(times):
            fh.write(name + "\\n")
    print("recorded", name)
    return {
        "agent": os.environ.get("LETTA_AGENT_ID"),
        "token": os.environ.get("SERVICE_TOKEN"),
        "leaked": os.environ.get("CANARY_FROM_SERVER"),
    }
'''

DESCRIBE = '''
import os

def describe(word: str, tags: list[str] | None = None) -> dict:
    """Echo a word and what the sandbox lets the tool see.

    Args:
        word: The word.
        tags: Labels to echo back.
    """
    print("stdout of", word)
    return {
        "word": word,
        "tags": tags,
        "token": os.environ.get("SERVICE_TOKEN"),
        "tool": os.environ.get("LETTA_TOOL_ID"),
        "leaked": os.environ.get("CANARY_FROM_SERVER"),
        "uid": os.getuid(),
    }
'''

DIVIDE = '''
def divide(a: int, b: int) -> float:
    """Divide two numbers.

    Args:
        a: The numerator.
        b: The denominator.
    """
    return a / b
'''


def _client(api_server: ApiServer) -> AsyncLetta:
    return AsyncLetta(base_url=api_server.base_url, max_retries=0)


def _llm(mnemo: Mnemo) -> dict[str, str]:
    return {"model": "fake", "model_endpoint_type": "openai", "model_endpoint": mnemo.fake.base_url}


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_FROM_SERVER", "must-not-leak")


@pytest.fixture
def unisolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The worker's local sandbox as a plain subprocess, and a directory its throwaway uid may write."""
    monkeypatch.setitem(select._runners, "local", LocalSandbox(isolation="none"))
    # Not under pytest's tmp_path: its parents are private to root, and the tool runs as another uid.
    visits = Path(tempfile.mkdtemp(prefix="mnemo-visits-"))
    visits.chmod(0o777)
    # Each run has its own throwaway uid: the file must be writable by the next one too.
    (visits / "visits.log").touch(mode=0o666)
    (visits / "visits.log").chmod(0o666)
    try:
        yield visits
    finally:
        shutil.rmtree(visits, ignore_errors=True)


async def test_a_custom_tool_runs_once_with_the_agents_secrets(
    api_server: ApiServer, mnemo: Mnemo, unisolated: Path, canary: None
) -> None:
    client = _client(api_server)
    tool = await client.tools.create(source_code=RECORD_VISIT)
    agent = await client.agents.create(
        memory_blocks=[],
        llm_config=_llm(mnemo),
        tool_ids=[tool.id],
        secrets={"VISITS_DIR": str(unisolated), "SERVICE_TOKEN": "s3cret"},
    )
    before = [m.id async for m in client.agents.messages.list(agent.id)]

    result = await client.agents.tools.run("record_visit", agent_id=agent.id, args={"name": "ada"})

    assert result.status == "success", result
    assert result.func_return == {"agent": agent.id, "token": "s3cret", "leaked": None}
    assert result.stdout == ["recorded ada\n"] and result.stderr == []
    assert (unisolated / "visits.log").read_text() == "ada\n"  # ran once, on the worker
    # A direct call is not part of the conversation.
    assert [m.id async for m in client.agents.messages.list(agent.id)] == before

    again = await client.agents.tools.run("record_visit", agent_id=agent.id, args={"name": "bob", "times": 2})
    assert again.status == "success"
    assert (unisolated / "visits.log").read_text() == "ada\nbob\nbob\n"


async def test_the_default_sandbox_and_a_tool_that_raises(
    api_server: ApiServer, mnemo: Mnemo, canary: None
) -> None:
    client = _client(api_server)
    describe = await client.tools.create(source_code=DESCRIBE)
    divide = await client.tools.create(source_code=DIVIDE)
    agent = await client.agents.create(
        memory_blocks=[],
        llm_config=_llm(mnemo),
        tool_ids=[describe.id, divide.id],
        secrets={"SERVICE_TOKEN": "in-the-box"},
    )
    result = await client.agents.tools.run(
        "describe", agent_id=agent.id, args={"word": "hi", "tags": ["a", "b"]}
    )
    assert result.status == "success", result
    value = result.func_return
    assert isinstance(value, dict)
    assert {k: value[k] for k in ("word", "tags", "token", "tool", "leaked")} == {
        "word": "hi",
        "tags": ["a", "b"],
        "token": "in-the-box",
        "tool": describe.id,
        "leaked": None,
    }
    assert value["uid"] != os.getuid()  # not the server's own user
    assert result.stdout == ["stdout of hi\n"]

    failed = await client.agents.tools.run("divide", agent_id=agent.id, args={"a": 1, "b": 0})
    assert failed.status == "error"
    assert failed.func_return == "ZeroDivisionError: division by zero"
    assert failed.stderr and "ZeroDivisionError" in failed.stderr[0] and "return a / b" in failed.stderr[0]


async def test_unknown_agents_tools_and_bad_arguments(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    divide = await client.tools.create(source_code=DIVIDE)
    describe = await client.tools.create(source_code=DESCRIBE)
    agent = await client.agents.create(memory_blocks=[], llm_config=_llm(mnemo), tool_ids=[divide.id])

    with pytest.raises(NotFoundError, match="agent-00000000-0000-4000-8000-000000000000 not found"):
        await client.agents.tools.run(
            "divide", agent_id="agent-00000000-0000-4000-8000-000000000000", args={"a": 1, "b": 2}
        )
    with pytest.raises(NotFoundError, match="'nope' is not attached") as err:
        await client.agents.tools.run("nope", agent_id=agent.id, args={})
    assert "divide" in str(err.value)  # the message lists what is attached
    with pytest.raises(NotFoundError, match="'describe' is not attached"):  # exists, but not this agent's
        await client.agents.tools.run(describe.name, agent_id=agent.id, args={"word": "x"})

    with pytest.raises(UnprocessableEntityError) as err:
        await client.agents.tools.run("divide", agent_id=agent.id, args={"a": 1})
    assert "missing required argument 'b' (integer: The denominator.)" in str(err.value)
    with pytest.raises(UnprocessableEntityError) as err:
        await client.agents.tools.run("divide", agent_id=agent.id, args={"a": "one", "b": 2})
    assert "argument 'a': 'one' is not of type 'integer'" in str(err.value)
    with pytest.raises(UnprocessableEntityError) as err:
        await client.agents.tools.run("divide", agent_id=agent.id, args={"a": 1, "b": 2, "c": 3})
    assert "unexpected argument(s) 'c' (it takes: a, b)" in str(err.value)

    # The same tool with good arguments runs: nothing above was a problem of the route itself.
    ok = await client.agents.tools.run("divide", agent_id=agent.id, args={"a": 1, "b": 4})
    assert (ok.status, ok.func_return) == ("success", 0.25)


async def test_a_typescript_tool_is_not_supported_yet(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    schema = {"name": "shout", "parameters": {"type": "object", "properties": {}}}
    tool = await client.tools.create(
        source_code="export function shout() { return 'HI' }", source_type="typescript", json_schema=schema
    )
    agent = await client.agents.create(memory_blocks=[], llm_config=_llm(mnemo), tool_ids=[tool.id])
    with pytest.raises(InternalServerError, match="not supported yet") as err:
        await client.agents.tools.run("shout", agent_id=agent.id, args={})
    assert err.value.status_code == 501


async def test_built_in_memory_tools_edit_memory(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    agent = await client.agents.create(
        memory_blocks=[{"label": "human", "value": "Name: Ada"}], llm_config=_llm(mnemo)
    )
    inserted = await client.agents.tools.run(
        "memory_insert", agent_id=agent.id, args={"label": "human", "new_string": "Likes chess"}
    )
    assert inserted.status == "success", inserted
    block = await client.agents.blocks.retrieve("human", agent_id=agent.id)
    assert block.value == "Name: Ada\nLikes chess"

    # Letta's model-facing error text, as a tool error rather than an HTTP error.
    missing = await client.agents.tools.run(
        "memory_replace", agent_id=agent.id, args={"label": "human", "old_string": "Bob", "new_string": "Al"}
    )
    assert missing.status == "error" and "Bob" in str(missing.func_return)
    assert (await client.agents.blocks.retrieve("human", agent_id=agent.id)).value == "Name: Ada\nLikes chess"

    found = await client.agents.tools.run("conversation_search", agent_id=agent.id, args={"query": "chess"})
    assert found.status == "success", found
