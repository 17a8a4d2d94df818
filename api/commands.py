"""CLI commands that act on runs through Temporal and Postgres (`mnemo runs ...`)."""

from __future__ import annotations

import asyncio
import os
import sys

from rich.console import Console

from api.runs import RunService
from mnemo.config import get_settings
from mnemo.store.db import Database


async def _resume(run_id: str, wait: bool) -> int:
    from worker.client import connect

    settings = get_settings()
    console = Console()
    try:
        db = Database.from_settings(settings)
    except RuntimeError as exc:
        console.print(f"[red]cannot resume:[/] {exc}")
        return 2
    try:
        client = await connect(settings)
    except Exception as exc:
        await db.dispose()
        console.print(f"[red]cannot resume:[/] Temporal at {settings.temporal_target} is unreachable ({exc})")
        return 2
    service = RunService(client, db, settings.task_queue, settings.run_policy())
    await service.start()
    try:
        try:
            run = await service.resume(run_id)
        except (LookupError, ValueError) as exc:
            console.print(f"[red]cannot resume:[/] {exc}")
            return 2
        console.print(f"resuming run {run.id} of agent {run.agent_id} from its last persisted step")
        if not wait:
            return 0
        done = await service.wait(run_id)
        console.print(f"run {run_id}: {done.status} ({done.stop_reason})")
        return 0 if done.status == "completed" else 1
    finally:
        await service.close()
        await db.dispose()


def resume(run_id: str, wait: bool = True) -> int:
    code = asyncio.run(_resume(run_id, wait))
    sys.stdout.flush()
    sys.stderr.flush()
    # Short-lived Temporal client processes can crash at interpreter exit (sdk-python#300).
    os._exit(code)
