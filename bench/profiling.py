"""An optional cProfile of this process around a block (the worker's code too, with --worker inprocess)."""

from __future__ import annotations

import contextlib
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Iterator

TOP = 30


@contextlib.contextmanager
def profiled(path: str | None) -> Iterator[None]:
    """Profile the block into `path` and print the top functions to stderr; nothing when `path` is None.

    cProfile sees only this thread's Python code: Temporal's core (Rust threads), the embedder's thread
    and the other processes are not in it. It counts this thread's CPU time, not wall time: on a busy
    machine wall time charges other processes' turns to whatever function was running.
    """
    if path is None:
        yield
        return
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(path)
        for key in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(key).print_stats(TOP)
            print(f"profile ({path}), top {TOP} by {key}:\n{out.getvalue()}", file=sys.stderr, flush=True)
