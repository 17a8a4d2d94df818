"""The `mnemo` command.

This is the composition root: the `worker` and `api` commands import the outer packages lazily,
so `mnemo` itself still imports none of them at module level.
"""

from __future__ import annotations

import typer

app = typer.Typer(help="Mnemo: durable, Letta-compatible stateful agents on Temporal.", no_args_is_help=True)
runs_app = typer.Typer(help="Inspect and resume runs.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(db_app, name="db")


@app.command()
def up(detach: bool = typer.Option(False, "--detach", "-d", help="Start in the background and return.")) -> None:
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
