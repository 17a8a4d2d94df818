"""CLI commands that talk to a running Mnemo through its HTTP API: agents, chat, runs list/show/tail.

Each function returns the process's exit code; `mnemo.cli` wires them to typer. They import httpx,
rich and pydantic only (never litellm, sqlalchemy, temporalio, `api` or `worker`), so they start fast.
A failure prints one line on stderr and returns 1.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import ParamSpec
from urllib.parse import quote

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from mnemo.cli_http_client import DONE, ApiClient, ApiUnreachable, CliError, SseEvent
from mnemo.cli_http_models import (
    AgentView,
    BlockCreate,
    CreateAgentRequest,
    RunView,
    StepView,
    StreamEvent,
    StreamRequest,
    TailRequest,
    UsageView,
    UserMessage,
)
from mnemo.cli_http_render import EventPrinter, make_console

P = ParamSpec("P")
EXIT_COMMANDS = frozenset({"/exit", "/quit"})
INTERRUPTED = 130  # the shell's code for a command ended by Ctrl-C


def _command(fn: Callable[P, int]) -> Callable[P, int]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            return fn(*args, **kwargs)
        except ApiUnreachable as exc:
            make_console(stderr=True).print(str(exc), style="red")
            return 1
        except CliError as exc:
            make_console(stderr=True).print(f"Error: {exc}", style="red")
            return 1

    return wrapper


def _seg(value: str) -> str:
    return quote(value, safe="")


# Ids and times are copied and compared whole: a narrow terminal squeezes the other columns instead.
WHOLE_COLUMNS = frozenset({"ID", "AGENT", "CREATED"})


def _table(*headers: str) -> Table:
    table = Table(header_style="bold")
    for header in headers:
        table.add_column(header, no_wrap=header in WHOLE_COLUMNS)
    return table


def _when(value: str | None) -> str:
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


# --- agents -----------------------------------------------------------------------------------------


@_command
def agents_list(api_url: str | None, *, limit: int = 50) -> int:
    with ApiClient.connect(api_url) as api:
        agents = [AgentView.model_validate(a) for a in api.get_json("/v1/agents/", {"limit": limit})]
    out = make_console()
    if not agents:
        out.print("No agents yet: create one with `mnemo agents create --name NAME --model PROVIDER/MODEL`.")
        return 0
    table = _table("ID", "NAME", "TYPE", "MODEL", "LAST STOP REASON")
    for agent in agents:
        table.add_row(
            agent.id,
            agent.name or "",
            agent.agent_type or "",
            agent.model_name,
            agent.last_stop_reason or "-",
        )
    out.print(table)
    return 0


def _llm_choice(model: str | None, endpoint: str | None, endpoint_model: str | None) -> dict[str, object]:
    if endpoint is None and endpoint_model is None:
        return {"model": model}
    if model is not None:
        raise CliError("Give either --model or --endpoint with --endpoint-model, not both")
    if endpoint is None or endpoint_model is None:
        raise CliError(
            "--endpoint and --endpoint-model go together: the server's URL and the model it serves"
        )
    # Any OpenAI-compatible server (Ollama, vLLM, LM Studio, the fake LLM) is Letta's `openai` endpoint type.
    return {
        "llm_config": {"model": endpoint_model, "model_endpoint_type": "openai", "model_endpoint": endpoint}
    }


@_command
def agents_create(
    api_url: str | None,
    *,
    name: str,
    model: str | None = None,
    endpoint: str | None = None,
    endpoint_model: str | None = None,
    persona: str | None = None,
    human: str | None = None,
    agent_type: str = "letta_v1_agent",
) -> int:
    blocks = [
        BlockCreate(label=label, value=v)
        for label, v in (("persona", persona), ("human", human))
        if v is not None
    ]
    body = CreateAgentRequest.model_validate(
        {
            "name": name,
            "agent_type": agent_type,
            "memory_blocks": blocks,
            **_llm_choice(model, endpoint, endpoint_model),
        }
    )
    with ApiClient.connect(api_url) as api:
        created = AgentView.model_validate(api.post_json("/v1/agents/", body.model_dump(exclude_none=True)))
    make_console().print(created.id)
    return 0


@_command
def agents_show(api_url: str | None, agent_id: str) -> int:
    with ApiClient.connect(api_url) as api:
        raw = api.get_json(f"/v1/agents/{_seg(agent_id)}", {"include": ["agent.blocks", "agent.tools"]})
    agent = AgentView.model_validate(raw)
    out = make_console()
    out.print(f"{agent.name or '(unnamed)'}  {agent.id}", style="bold")
    llm = agent.llm_config
    endpoint = f" at {llm['model_endpoint']}" if llm.get("model_endpoint") else ""
    rows = [
        ("type", agent.agent_type or "-"),
        ("model", f"{agent.model_name} ({llm.get('model_endpoint_type', '?')}{endpoint})"),
        ("context window", str(llm.get("context_window", "-"))),
        ("embedding", agent.embedding or "-"),
        ("last stop reason", agent.last_stop_reason or "-"),
    ]
    for key, value in rows:
        out.print(f"  {key + ':':<18}{value}")
    out.print(f"Memory blocks ({len(agent.blocks)})", style="bold")
    for block in agent.blocks:
        flags = ", read-only" if block.read_only else ""
        out.print(f"  {block.label} ({len(block.value)}/{block.limit or '-'} chars{flags})", style="cyan")
        for line in block.value.splitlines() or [""]:
            out.print(f"    {line}")
    out.print(f"Tools ({len(agent.tools)})", style="bold")
    for tool in agent.tools:
        out.print(f"  {tool.name}" + (f"  [{tool.tool_type}]" if tool.tool_type else ""))
    return 0


# --- streams ----------------------------------------------------------------------------------------


def _event(sse: SseEvent) -> StreamEvent | None:
    try:
        return StreamEvent.model_validate_json(sse.data)
    except ValidationError:
        return None


def follow(events: Iterator[SseEvent], printer: EventPrinter, *, raw: bool = False) -> int:
    """Prints a run's stream until `[DONE]`: 0 when it ends cleanly, 1 when the run reported an error."""
    try:
        for sse in events:
            if sse.data == DONE:
                printer.finish()
                return 1 if printer.errors else 0
            event = _event(sse)
            if event is not None and event.message_type == "ping":
                continue  # a keepalive, not part of the run
            if sse.event == "error" and (event is None or event.message_type != "error_message"):
                printer.finish()  # a failure of the stream itself rather than of the run
                printer.errors.append(sse.data)
                printer.err.print(f"error: {sse.data}", style="red")
                continue
            if raw or event is None:
                if event is not None:
                    printer.track(event)
                printer.out.print(sse.data)
            else:
                printer.handle(event)
    except KeyboardInterrupt:
        printer.finish()
        printer.err.print(f"Interrupted: the run goes on without this client{printer.resume_hint()}.")
        return INTERRUPTED
    printer.finish()
    raise CliError(f"The stream ended before the run did{printer.resume_hint()}")


def _turn(api: ApiClient, agent_id: str, text: str, out: Console, err: Console) -> int:
    body = StreamRequest(messages=[UserMessage(content=text)], stream_tokens=True)
    printer = EventPrinter(out, err, show_usage=False)
    return follow(
        api.stream_events(f"/v1/agents/{_seg(agent_id)}/messages/stream", body.model_dump()), printer
    )


def _read_line(interactive: bool) -> str | None:
    if interactive:
        try:
            return input("you> ")
        except EOFError:
            return None
    line = sys.stdin.readline()
    return line if line else None


@_command
def chat(api_url: str | None, agent_id: str, message: str | None = None) -> int:
    out, err = make_console(), make_console(stderr=True)
    with ApiClient.connect(api_url) as api:
        if message is not None:
            return _turn(api, agent_id, message, out, err)
        # Checked first so that an unknown id fails before anyone types a line.
        agent = AgentView.model_validate(api.get_json(f"/v1/agents/{_seg(agent_id)}"))
        interactive = sys.stdin.isatty()
        if interactive:
            out.print(
                f"Chatting with {agent.name or agent.id} ({agent.id}). /exit or Ctrl-D to leave.", style="dim"
            )
        code = 0
        while True:
            try:
                line = _read_line(interactive)
            except KeyboardInterrupt:
                out.print()
                return INTERRUPTED
            if line is None or line.strip() in EXIT_COMMANDS:
                return code
            if not line.strip():
                continue
            try:
                result = _turn(api, agent_id, line.strip(), out, err)
            except ApiUnreachable:
                raise
            except CliError as exc:  # one bad turn does not end the conversation
                err.print(f"Error: {exc}", style="red")
                result = 1
            if result == INTERRUPTED:
                return result
            code = code or result


# --- runs -------------------------------------------------------------------------------------------


@_command
def runs_list(
    api_url: str | None, *, agent_id: str | None = None, status: str | None = None, limit: int = 20
) -> int:
    params: dict[str, object] = {"limit": limit}
    if agent_id:
        params["agent_id"] = agent_id
    if status:
        params["statuses"] = [status]
    with ApiClient.connect(api_url) as api:
        runs = [RunView.model_validate(r) for r in api.get_json("/v1/runs/", params)]
    out = make_console()
    if not runs:
        out.print("No runs match.")
        return 0
    # Filtered by agent, the agent column would repeat one id on every row.
    headers = (
        ("ID", "STATUS", "STOP REASON", "CREATED")
        if agent_id
        else ("ID", "AGENT", "STATUS", "STOP REASON", "CREATED")
    )
    table = _table(*headers)
    for run in runs:
        cells = [run.id, run.agent_id or "", run.status, run.stop_reason or "-", _when(run.created_at)]
        table.add_row(*(cells[:1] + cells[2:] if agent_id else cells))
    out.print(table)
    return 0


@_command
def runs_show(api_url: str | None, run_id: str) -> int:
    base = f"/v1/runs/{_seg(run_id)}"
    with ApiClient.connect(api_url) as api:
        run = RunView.model_validate(api.get_json(base))
        usage = UsageView.model_validate(api.get_json(f"{base}/usage"))
        steps = [
            StepView.model_validate(s) for s in api.get_json(f"{base}/steps", {"order": "asc", "limit": 1000})
        ]
        messages = [StreamEvent.model_validate(m) for m in api.get_json(f"{base}/messages", {"limit": 1000})]
    out, err = make_console(), make_console(stderr=True)
    out.print(run.id, style="bold")
    duration = f"{run.total_duration_ns / 1e9:.2f} s" if run.total_duration_ns is not None else "-"
    rows = [
        ("agent", run.agent_id or "-"),
        ("status", run.status),
        ("stop reason", run.stop_reason or "-"),
        ("created", _when(run.created_at)),
        ("completed", _when(run.completed_at)),
        ("duration", duration),
        (
            "usage",
            f"{usage.total_tokens} tokens ({usage.prompt_tokens} prompt, {usage.completion_tokens} completion)",
        ),
    ]
    if run.metadata.get("error"):
        rows.append(("error", str(run.metadata["error"])))
    for key, value in rows:
        out.print(f"  {key + ':':<13}{value}")
    out.print(f"Steps ({len(steps)})", style="bold")
    if steps:
        table = _table("#", "ID", "STATUS", "MODEL", "TOKENS", "STOP REASON")
        for i, step in enumerate(steps, 1):
            tokens = "-" if step.total_tokens is None else str(step.total_tokens)
            table.add_row(
                str(i), step.id, step.status or "-", step.model or "-", tokens, step.stop_reason or "-"
            )
        out.print(table)
    out.print(f"Messages ({len(messages)})", style="bold")
    printer = EventPrinter(out, err)
    for message in messages:
        printer.handle(message)
    printer.finish()
    return 0


@_command
def runs_tail(api_url: str | None, run_id: str, *, after: int = 0, as_json: bool = False) -> int:
    printer = EventPrinter(make_console(), make_console(stderr=True))
    body = TailRequest(starting_after=after)
    with ApiClient.connect(api_url) as api:
        return follow(
            api.stream_events(f"/v1/runs/{_seg(run_id)}/stream", body.model_dump()), printer, raw=as_json
        )
