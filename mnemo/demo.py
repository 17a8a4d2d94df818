"""`make run`: start the embedded stack, create an agent with memory, and talk to it over the API.

With a provider key (OPENAI_API_KEY or ANTHROPIC_API_KEY) the agent uses a real model; without one it
uses Mnemo's scripted fake LLM, so the whole durable path (Temporal, Postgres, the worker) still runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import httpx
from rich.console import Console

from mnemo.config import Settings, get_settings
from mnemo.fakellm import FakeLLMClient, Reply
from mnemo.stack import launch
from mnemo.stack.processes import StackError, live_record

console = Console(soft_wrap=True)  # no hard wraps: URLs stay clickable, output stays greppable
FAKE_MODEL = "mnemo-demo"
CONVERSATION = [
    "Hi! I'm Ada, and I love hiking in the Alps.",
    "What do you remember about me?",
]


def _fake_llm(settings: Settings) -> dict[str, Any]:
    record = live_record(settings.home, "fake-llm") or launch.start_fake_llm(settings).record
    fake = FakeLLMClient(record.address)
    fake.reset()
    fake.script(
        Reply.tool_call(
            "memory_replace",
            {
                "label": "human",
                "old_string": "Name: unknown",
                "new_string": "Name: Ada\nLoves hiking in the Alps.",
            },
        ),
        Reply.text("Nice to meet you, Ada! I've made a note that you love hiking in the Alps."),
        Reply.text("You're Ada, and you love hiking in the Alps. I keep that in my core memory."),
        model=FAKE_MODEL,
    )
    return {
        "model": FAKE_MODEL,
        "model_endpoint_type": "openai",
        "model_endpoint": record.address,
        "context_window": 32000,
    }


def _model_choice(settings: Settings) -> dict[str, Any]:
    if settings.openai_api_key or settings.anthropic_api_key:
        handle = settings.default_model or (
            "openai/gpt-4o-mini" if settings.openai_api_key else "anthropic/claude-3-5-haiku-latest"
        )
        console.print(f"Using the real model [bold]{handle}[/].")
        return {"model": handle}
    console.print("No model provider key is set (e.g. OPENAI_API_KEY): using Mnemo's scripted fake LLM.")
    return {"llm_config": _fake_llm(settings)}


def _show(message: dict[str, Any]) -> None:
    kind = message["message_type"]
    if kind == "assistant_message":
        console.print(f"[bold green]agent:[/] {message['content']}")
    elif kind == "reasoning_message":
        console.print(f"[dim]thinking: {message['reasoning']}[/]")
    elif kind == "tool_call_message":
        call = message["tool_call"]
        console.print(f"[cyan]tool call:[/] {call['name']}({call['arguments']})")
    elif kind == "tool_return_message":
        console.print(f"[cyan]tool return ({message['status']}):[/] {message['tool_return'][:200]}")


def main() -> int:
    settings = get_settings()
    code = subprocess.call([sys.executable, "-m", "mnemo.cli", "up", "--detach"])
    if code != 0:
        return code
    api = launch.api_url(settings)
    headers = {"Authorization": f"Bearer {settings.api_key.get_secret_value()}"} if settings.api_key else {}
    try:
        model = _model_choice(settings)
    except StackError as exc:
        console.print(f"[red]mnemo:[/] {exc}")
        return 1
    with httpx.Client(base_url=f"{api}/v1", headers=headers, timeout=300) as http:
        created = http.post(
            "/agents/",
            json={
                "name": "mnemo-demo",
                "memory_blocks": [
                    {"label": "persona", "value": "I am Sam, a friendly assistant who remembers people."},
                    {"label": "human", "value": "Name: unknown"},
                ],
                **model,
            },
        )
        created.raise_for_status()
        agent = created.json()
        console.print(
            f"\nCreated agent [bold]{agent['name']}[/] ({agent['id']}) with persona and human memory.\n"
        )
        run_id = None
        for text in CONVERSATION:
            console.print(f"[bold blue]user:[/] {text}")
            reply = http.post(f"/agents/{agent['id']}/messages", json={"input": text})
            reply.raise_for_status()
            body = reply.json()
            for message in body["messages"]:
                _show(message)
                run_id = message.get("run_id") or run_id
            console.print(
                f"[dim]({body['stop_reason']['stop_reason']}, {_steps(body['usage']['step_count'])})[/]\n"
            )
        blocks = http.get(f"/agents/{agent['id']}", params={"include": "agent.blocks"}).json()["blocks"]
        human = next(b["value"] for b in blocks if b["label"] == "human")
        console.print(f"The agent's [bold]human[/] memory block now reads: {json.dumps(human)}\n")
    ui = f"http://127.0.0.1:{settings.temporal_ui_port}"
    console.print(f"API:          {api}/v1   (docs: {api}/docs)")
    console.print(
        f"Temporal UI:  {ui}   (the last run: {ui}/namespaces/{settings.temporal_namespace}/workflows/run:{run_id})"
    )
    console.print("Stop everything with: make stop")
    return 0


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


if __name__ == "__main__":
    sys.stdout.flush()
    os._exit(main())
