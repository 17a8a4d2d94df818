"""The `mnemo` command.

This is the composition root: the `worker` and `api` commands import the outer packages lazily,
so `mnemo` itself still imports none of them at module level.
"""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Mnemo: durable, Letta-compatible stateful agents on Temporal.", no_args_is_help=True)
agents_app = typer.Typer(help="List, create and inspect agents (through the HTTP API).", no_args_is_help=True)
runs_app = typer.Typer(help="Inspect, follow and resume runs.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(agents_app, name="agents")
app.add_typer(runs_app, name="runs")
app.add_typer(db_app, name="db")

# The commands that talk to a running API take its URL; MNEMO_API_KEY, when set, is sent as a bearer token.
ApiUrl = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        envvar="MNEMO_API_URL",
        show_default=False,
        help="Mnemo API base URL (default: http://127.0.0.1:$MNEMO_API_PORT, i.e. port 8283).",
    ),
]


@app.command()
def up(
    detach: bool = typer.Option(False, "--detach", "-d", help="Start in the background and return."),
) -> None:
    """Start the embedded stack: Temporal dev server, Postgres, migrations, worker, API."""
    from mnemo.stack.commands import up as _up

    raise typer.Exit(_up(detach=detach))


@app.command()
def down() -> None:
    """Stop what `mnemo up` started, and nothing else."""
    from mnemo.stack.commands import down as _down

    raise typer.Exit(_down())


@app.command()
def status() -> None:
    """Say what runs where."""
    from mnemo.stack.commands import status as _status

    raise typer.Exit(_status())


@app.command()
def worker() -> None:
    """Run one worker in the foreground against TEMPORAL_ADDRESS / DATABASE_URL."""
    from worker.main import run_forever

    run_forever()


@app.command()
def api(
    host: str | None = typer.Option(None, help="Bind address (default MNEMO_API_HOST)."),
    port: int | None = typer.Option(None, help="Port (default MNEMO_API_PORT, 8283)."),
) -> None:
    """Run one API process in the foreground against TEMPORAL_ADDRESS / DATABASE_URL."""
    from api.server import serve

    serve(host=host, port=port)


@app.command("fake-llm")
def fake_llm(
    port: int = typer.Option(8299, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Bind address."),
) -> None:
    """Run the scriptable fake OpenAI-compatible LLM server (for demos and benchmarks)."""
    from mnemo.fakellm.server import serve_forever

    serve_forever(host=host, port=port)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default head)."""
    from mnemo.store.migrate import upgrade

    upgrade(revision=revision)


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. base or -1.")) -> None:
    """Revert migrations down to REVISION."""
    from mnemo.store.migrate import downgrade

    downgrade(revision=revision)


@agents_app.command("list")
def agents_list(
    limit: int = typer.Option(50, min=1, max=1000, help="At most this many, newest first."),
    api_url: ApiUrl = None,
) -> None:
    """List agents: id, name, type, model, last stop reason."""
    from mnemo.cli_http import agents_list as _list

    raise typer.Exit(_list(api_url, limit=limit))


@agents_app.command("create")
def agents_create(
    name: str = typer.Option(..., "--name", help="The agent's name."),
    model: str | None = typer.Option(None, "--model", help="Model handle, e.g. openai/gpt-4o-mini."),
    endpoint: str | None = typer.Option(None, "--endpoint", help="Base URL of an OpenAI-compatible server."),
    endpoint_model: str | None = typer.Option(
        None, "--endpoint-model", help="The model name that server serves."
    ),
    persona: str | None = typer.Option(None, "--persona", help="Value of the persona memory block."),
    human: str | None = typer.Option(None, "--human", help="Value of the human memory block."),
    agent_type: str = typer.Option("letta_v1_agent", "--type", help="Letta agent type."),
    api_url: ApiUrl = None,
) -> None:
    """Create an agent and print its id."""
    from mnemo.cli_http import agents_create as _create

    raise typer.Exit(
        _create(
            api_url,
            name=name,
            model=model,
            endpoint=endpoint,
            endpoint_model=endpoint_model,
            persona=persona,
            human=human,
            agent_type=agent_type,
        )
    )


@agents_app.command("show")
def agents_show(agent_id: str, api_url: ApiUrl = None) -> None:
    """Show an agent: its memory blocks with their values, its tools and its model."""
    from mnemo.cli_http import agents_show as _show

    raise typer.Exit(_show(api_url, agent_id))


@app.command()
def chat(
    agent_id: str,
    message: str | None = typer.Argument(
        None, help="Send this and stream the reply; without it, chat line by line."
    ),
    api_url: ApiUrl = None,
) -> None:
    """Talk to an agent, streaming its replies, tool calls and stop reasons as they happen."""
    from mnemo.cli_http import chat as _chat

    raise typer.Exit(_chat(api_url, agent_id, message))


@runs_app.command("list")
def runs_list(
    agent: str | None = typer.Option(None, "--agent", help="Only this agent's runs."),
    status: str | None = typer.Option(
        None, "--status", help="Only runs with this status, e.g. completed, failed."
    ),
    limit: int = typer.Option(20, min=1, max=1000, help="At most this many, newest first."),
    api_url: ApiUrl = None,
) -> None:
    """List runs: id, agent, status, stop reason, creation time."""
    from mnemo.cli_http import runs_list as _list

    raise typer.Exit(_list(api_url, agent_id=agent, status=status, limit=limit))


@runs_app.command("show")
def runs_show(run_id: str, api_url: ApiUrl = None) -> None:
    """Show a run: status, stop reason, usage, steps and messages."""
    from mnemo.cli_http import runs_show as _show

    raise typer.Exit(_show(api_url, run_id))


@runs_app.command("tail")
def runs_tail(
    run_id: str,
    after: int = typer.Option(0, "--after", min=0, help="Start after this seq_id."),
    as_json: bool = typer.Option(False, "--json", help="Print each event's JSON on a line of its own."),
    api_url: ApiUrl = None,
) -> None:
    """Print a run's events from its durable log until it ends (finished runs too)."""
    from mnemo.cli_http import runs_tail as _tail

    raise typer.Exit(_tail(api_url, run_id, after=after, as_json=as_json))


@runs_app.command("resume")
def runs_resume(
    run_id: str, wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for the run to finish.")
) -> None:
    """Resume a failed or interrupted run from its last persisted step."""
    from api.commands import resume

    raise typer.Exit(resume(run_id, wait=wait))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
