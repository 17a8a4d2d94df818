"""The embedded Postgres (pgserver): start/stop lifecycle, and an engine surviving a restart."""

from __future__ import annotations

import tempfile
from pathlib import Path

import psutil
import sqlalchemy as sa

from mnemo.store import embedded
from mnemo.store.db import Database


async def test_embedded_postgres_lifecycle_and_engine_reconnect() -> None:
    """start is idempotent, stop leaves no process, and a pooled engine survives the restart."""
    embedded.adopt_orphans()
    with tempfile.TemporaryDirectory(prefix="mnemo-embedded-") as root:
        data_dir = Path(root) / "pg"
        assert embedded.uri(data_dir) is None and embedded.stop(data_dir) is False

        uri = embedded.start(data_dir)
        pid = embedded.pid(data_dir)
        assert pid is not None and embedded.uri(data_dir) == uri
        assert embedded.start(data_dir) == uri and embedded.pid(data_dir) == pid

        db = Database(uri, pool_size=1)
        try:
            await db.ping()  # leaves a pooled connection behind
            children = [p.pid for p in psutil.Process(pid).children(recursive=True)]
            assert children

            assert embedded.stop(data_dir) is True
            assert embedded.uri(data_dir) is None and embedded.pid(data_dir) is None
            for gone in [pid, *children]:
                assert not psutil.pid_exists(gone), gone  # exited and reaped, not a zombie

            assert embedded.start(data_dir) == uri
            assert embedded.pid(data_dir) != pid
            # The pooled connection died with the old server; pre-ping replaces it.
            async with db.session() as s:
                assert (await s.execute(sa.text("SELECT 1"))).scalar_one() == 1
        finally:
            await db.dispose()
            embedded.stop(data_dir)
        assert embedded.pid(data_dir) is None
