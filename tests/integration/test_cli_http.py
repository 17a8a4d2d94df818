"""The `mnemo` CLI as a client of the HTTP API: agents, chat, runs list/show/tail, and its errors.

Each command runs as a real subprocess (`asyncio.create_subprocess_exec`, so the test's worker keeps
running on this loop) against a real API, a real worker and the fake LLM.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from mnemo.config import Settings
from mnemo.fakellm import Fault, Reply
from mnemo.ids import new_id
from mnemo.runtime.tools import InProcessTool
from mnemo.store.tables import ToolRow
from tests.fixtures.api_server import ApiServer, free_port
from tests.fixtures.mnemo import Mnemo

MNEMO = str(Path(sys.executable).parent / "mnemo")
REPLY = "Noted: you like chess, and I will remember that."
HEAVY_MODULES = (
    "litellm",
    "sqlalchemy",
    "sqlmodel",
    "temporalio",
    "api",
    "worker",
    "workflows",
    "activities",
)


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


async def cli(*args: str, api_url: str | None = None, stdin: str | None = None, **env: str) -> Result:
    base = {k: v for k, v in os.environ.items() if k not in ("MNEMO_API_URL", "MNEMO_API_KEY", "COLUMNS")}
    if api_url is not None:
        base["MNEMO_API_URL"] = api_url
    proc = await asyncio.create_subprocess_exec(
        MNEMO,
        *args,
        env={**base, **env},
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else None), 120)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


async def create_agent(api_server: ApiServer, mnemo: Mnemo, name: str = "cli-agent") -> str:
    result = await cli(
        "agents", "create", "--name", name,
        "--endpoint", mnemo.fake.base_url, "--endpoint-model", "fake",
        "--persona", "I am Sam, a patient chess coach.", "--human", "Name: Ada",
        api_url=api_server.base_url,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert len(result.lines) == 1 and result.lines[0].startswith("agent-"), result.out
    return result.lines[0]


async def raw_events(api_server: ApiServer, run_id: str, after: int = 0) -> list[str]:
    """The run's SSE `data:` payloads as the API sends them, read without the CLI's parser."""
    async with httpx.AsyncClient(base_url=api_server.base_url, timeout=30) as http:
        response = await http.post(f"/v1/runs/{run_id}/stream", json={"starting_after": after})
    assert response.status_code == 200, response.text
    data = [line[len("data: ") :] for line in response.text.split("\n") if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    return [d for d in data[:-1] if json.loads(d)["message_type"] != "ping"]


async def chat_with_tool_call(api_server: ApiServer, mnemo: Mnemo) -> tuple[str, str, Result]:
    """One `mnemo chat` turn whose first step calls memory_insert; returns agent id, run id, output."""
    agent_id = await create_agent(api_server, mnemo)
    mnemo.fake.script(
        Reply.tool_call("memory_insert", {"label": "human", "new_string": "Likes chess"}), Reply.text(REPLY)
    )
    result = await cli("chat", agent_id, "I like chess", api_url=api_server.base_url)
    assert result.code == 0, result.err
    async with httpx.AsyncClient(base_url=api_server.base_url, timeout=30) as http:
        runs = (await http.get("/v1/runs/", params={"agent_id": agent_id})).json()
    assert len(runs) == 1
    return agent_id, runs[0]["id"], result


async def test_agents_create_list_show(api_server: ApiServer, mnemo: Mnemo) -> None:
    agent_id = await create_agent(api_server, mnemo, name="Sam the coach")
    other_id = await create_agent(api_server, mnemo, name="other")

    listed = await cli("agents", "list", api_url=api_server.base_url)
    assert listed.code == 0, listed.err
    rows = {line.split("│")[1].strip(): line for line in listed.lines if "agent-" in line}
    assert set(rows) == {agent_id, other_id}
    cells = [cell.strip() for cell in rows[agent_id].split("│")[1:-1]]
    assert cells == [agent_id, "Sam the coach", "letta_v1_agent", "openai/fake", "-"]

    shown = await cli("agents", "show", agent_id, "--api-url", api_server.base_url)
    assert shown.code == 0, shown.err
    assert shown.lines[0] == f"Sam the coach  {agent_id}"
    out = shown.out
    assert f"model:            openai/fake (openai at {mnemo.fake.base_url})" in out
    assert "    I am Sam, a patient chess coach." in out and "    Name: Ada" in out
    # The blocks and tools shown are the agent's own, as the API has them.
    async with httpx.AsyncClient(base_url=api_server.base_url) as http:
        state = (
            await http.get(f"/v1/agents/{agent_id}", params={"include": ["agent.blocks", "agent.tools"]})
        ).json()
    for block in state["blocks"]:
        assert f"  {block['label']} ({len(block['value'])}/{block['limit']} chars)" in shown.lines
    assert state["tools"] and all(f"  {t['name']}  [{t['tool_type']}]" in shown.lines for t in state["tools"])
    assert f"Tools ({len(state['tools'])})" in shown.lines


async def test_chat_streams_deltas_and_tool_calls(api_server: ApiServer, mnemo: Mnemo) -> None:
    _, run_id, result = await chat_with_tool_call(api_server, mnemo)
    lines = result.lines
    call = next(i for i, line in enumerate(lines) if line.startswith("→ memory_insert("))
    assert json.loads(lines[call][len("→ memory_insert(") : -1]) == {
        "label": "human",
        "new_string": "Likes chess",
    }
    returned = next(i for i, line in enumerate(lines) if line.startswith("← memory_insert returned: "))
    assert REPLY in lines and "stop reason: end_turn" in lines, result.out
    assert call < returned < lines.index(REPLY) < lines.index("stop reason: end_turn") == len(lines) - 1, (
        result.out
    )
    # With stream_tokens the API sends the reply only as deltas (never whole), so the line above is the
    # CLI's own joining of several pieces, in order.
    events = [json.loads(e) for e in await raw_events(api_server, run_id)]
    pieces = [e["content"] for e in events if e["message_type"] == "assistant_message"]
    assert len(pieces) > 1 and "".join(pieces) == REPLY
    assert not any(e["message_type"] == "tool_call_message" and e.get("date") for e in events)


async def test_chat_prints_each_part_while_the_run_goes_on(api_server: ApiServer, mnemo: Mnemo) -> None:
    # A tool that blocks until the test lets it go: while it waits the run cannot end, so whatever the
    # CLI has printed by then was printed as it arrived.
    gate = asyncio.Event()

    async def wait_for_test(note: str = "", **_: Any) -> str:
        await gate.wait()
        return f"released {note}"

    schema = {
        "name": "wait_for_test",
        "description": "Waits until the test releases it.",
        "parameters": {"type": "object", "properties": {"note": {"type": "string"}}, "required": []},
    }
    async with mnemo.db.transaction() as s:
        s.add(ToolRow(id=new_id("tool"), name="wait_for_test", tool_type="custom", json_schema=schema))
    mnemo.extra_tools["wait_for_test"] = InProcessTool("wait_for_test", wait_for_test)
    agent = await mnemo.create_agent(
        memory_blocks=[{"label": "human", "value": "Name: Ada"}], tools=["wait_for_test"]
    )
    mnemo.fake.script(
        Reply.tool_call("wait_for_test", {"note": "one moment"}, content="Let me check that for you."),
        Reply.text(REPLY),
    )
    proc = await asyncio.create_subprocess_exec(
        MNEMO, "chat", agent.id, "check it", "--api-url", api_server.base_url,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    early = b""
    expected_call = '→ wait_for_test({"note": "one moment"}'.encode()
    while expected_call not in early:
        chunk = await asyncio.wait_for(proc.stdout.read(4096), 60)
        assert chunk, early.decode()
        early += chunk
    assert early.decode().startswith("Let me check that for you.\n→ wait_for_test(")
    assert proc.returncode is None and not gate.is_set()  # the run is still waiting in the tool
    gate.set()
    rest, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    lines = (early + rest).decode().splitlines()
    lines[2] = lines[2][: lines[2].index('"time": ') + len('"time": ')]
    assert lines == [
        "Let me check that for you.",
        '→ wait_for_test({"note": "one moment"})',
        '← wait_for_test returned: {"status": "OK", "message": "released one moment", "time": ',
        REPLY,
        "stop reason: end_turn",
    ]


async def test_chat_reports_a_failed_run_and_exits_1(api_server: ApiServer, mnemo: Mnemo) -> None:
    agent_id = await create_agent(api_server, mnemo)
    mnemo.fake.script(Fault.status(400, "This model does not accept that request."))
    result = await cli("chat", agent_id, "hi", api_url=api_server.base_url)
    assert result.code == 1, result.out
    assert "This model does not accept that request." in result.err and result.err.startswith("error: ")
    assert result.lines == ["stop reason: llm_api_error"]


async def test_interactive_chat_reads_lines_until_exit_or_eof(api_server: ApiServer, mnemo: Mnemo) -> None:
    agent_id = await create_agent(api_server, mnemo)
    mnemo.fake.set_policy("echo")
    result = await cli(
        "chat", agent_id, api_url=api_server.base_url, stdin="hello there\n\nsecond line\n/exit\nnever sent\n"
    )
    assert result.code == 0, result.err
    assert [line for line in result.lines if line.startswith("echo: ")] == [
        "echo: hello there",
        "echo: second line",
    ]
    assert result.lines.count("stop reason: end_turn") == 2
    assert len(mnemo.fake.chat_requests) == 2

    at_eof = await cli("chat", agent_id, api_url=api_server.base_url, stdin="third\n")
    assert at_eof.code == 0, at_eof.err
    assert "echo: third" in at_eof.lines and len(mnemo.fake.chat_requests) == 3


async def test_runs_list_show_and_tail(api_server: ApiServer, mnemo: Mnemo) -> None:
    agent_id, run_id, _ = await chat_with_tool_call(api_server, mnemo)
    url = api_server.base_url

    listed = await cli("runs", "list", "--agent", agent_id, api_url=url)
    assert listed.code == 0, listed.err
    row = next(line for line in listed.lines if run_id in line)
    assert [c.strip() for c in row.split("│")[1:4]] == [run_id, "completed", "end_turn"]
    everyone = await cli("runs", "list", "--status", "completed", api_url=url)
    row = next(line for line in everyone.lines if run_id in line)
    assert [c.strip() for c in row.split("│")[1:5]] == [run_id, agent_id, "completed", "end_turn"]
    none = await cli("runs", "list", "--agent", agent_id, "--status", "failed", api_url=url)
    assert (none.code, none.out.strip()) == (0, "No runs match.")

    shown = await cli("runs", "show", run_id, api_url=url)
    assert shown.code == 0, shown.err
    async with httpx.AsyncClient(base_url=url) as http:
        usage = (await http.get(f"/v1/runs/{run_id}/usage")).json()
    assert usage["total_tokens"] > 0
    for expected in (
        "  status:      completed",
        "  stop reason: end_turn",
        f"  usage:       {usage['total_tokens']} tokens ({usage['prompt_tokens']} prompt, "
        f"{usage['completion_tokens']} completion)",
        "Steps (2)",
        "> I like chess",
        REPLY,
    ):
        assert expected in shown.lines, (expected, shown.out)
    assert any(line.startswith("→ memory_insert(") for line in shown.lines)

    # Every event of the finished run, exactly as the API streams it, then the command ends by itself.
    expected_events = await raw_events(api_server, run_id)
    tailed = await cli("runs", "tail", run_id, "--json", api_url=url)
    assert tailed.code == 0, tailed.err
    assert tailed.lines == expected_events
    last_two = [json.loads(e) for e in expected_events[-2:]]
    assert [e["message_type"] for e in last_two] == ["stop_reason", "usage_statistics"]

    after = last_two[0]["seq_id"] - 1
    resumed = await cli("runs", "tail", run_id, "--json", "--after", str(after), api_url=url)
    assert resumed.code == 0, resumed.err
    assert resumed.lines == expected_events[-2:] == await raw_events(api_server, run_id, after)

    human = await cli("runs", "tail", run_id, api_url=url)
    assert human.code == 0, human.err
    assert REPLY in human.lines and "stop reason: end_turn" in human.lines
    assert human.lines[-1].startswith("usage: 2 steps, ")


async def test_api_errors_print_one_line_and_exit_1(api_server: ApiServer, mnemo: Mnemo) -> None:
    missing = "agent-00000000-0000-4000-8000-000000000000"
    expected = f"Error: Agent {missing} not found (HTTP 404)"
    for args, stdin in (
        (("agents", "show", missing), None),
        (("chat", missing, "hi"), None),
        (("chat", missing), "hi\n"),
    ):
        result = await cli(*args, api_url=api_server.base_url, stdin=stdin)
        assert (result.code, result.err.strip(), result.out) == (1, expected, ""), args
    assert mnemo.fake.chat_requests == []

    bad = await cli("runs", "list", "--status", "bogus", api_url=api_server.base_url)
    assert bad.code == 1 and len(bad.err.strip().splitlines()) == 1
    assert "invalid run status 'bogus'" in bad.err and "(HTTP 422)" in bad.err

    unnamed = await cli(
        "agents", "create", "--name", "x", "--endpoint", mnemo.fake.base_url, api_url=api_server.base_url
    )
    assert unnamed.code == 1 and "--endpoint and --endpoint-model go together" in unnamed.err


async def test_api_key_is_sent_as_bearer(mnemo: Mnemo, temporal_env: Any) -> None:
    settings = Settings(
        DATABASE_URL=mnemo.db.url,
        TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
        MNEMO_TASK_QUEUE=mnemo.task_queue,
        MNEMO_API_KEY=SecretStr("s3cret-key"),
    )
    server = ApiServer(settings)
    server.start()
    try:
        ok = await cli("agents", "list", api_url=server.base_url, MNEMO_API_KEY="s3cret-key")
        assert (ok.code, ok.err) == (0, ""), ok.err
        denied = await cli("agents", "list", api_url=server.base_url)
        assert (
            denied.code == 1
            and denied.err.startswith("Error: Missing API key")
            and "(HTTP 401)" in denied.err
        )
    finally:
        server.stop()


async def test_unreachable_api_says_how_to_start_it() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (("agents", "list"), ("chat", "agent-x", "hi"), ("runs", "tail", "run-x")):
        result = await cli(*args, "--api-url", url)
        assert (result.code, result.out) == (1, ""), args
        assert result.err.strip() == f"Mnemo API is not reachable at {url}; start it with `mnemo up`"
    # Without --api-url or MNEMO_API_URL, the address is the one `mnemo up` serves on: MNEMO_API_PORT.
    port = free_port()
    result = await cli("runs", "list", MNEMO_API_PORT=str(port))
    assert result.code == 1
    assert (
        result.err.strip()
        == f"Mnemo API is not reachable at http://127.0.0.1:{port}; start it with `mnemo up`"
    )


async def test_api_commands_import_no_server_packages() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (("agents", "list", "--help"), ("agents", "list", "--api-url", url)):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-X", "importtime", "-m", "mnemo.cli", *args,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        modules = [
            line.split("|")[-1].strip()
            for line in err.decode().splitlines()
            if line.startswith("import time:")
        ]
        assert "typer" in modules  # `-m mnemo.cli` runs it as __main__, so it is not listed by name
        if "--help" not in args:
            assert "mnemo.cli_http" in modules  # the command really ran
        heavy = [m for m in modules if m.split(".")[0] in HEAVY_MODULES]
        assert heavy == [], heavy
