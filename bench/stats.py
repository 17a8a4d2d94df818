"""Summaries of samples, the machine description, and CPU time per stack component."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from collections.abc import Sequence

import psutil
from pydantic import BaseModel


class Summary(BaseModel):
    p50: float
    p95: float
    mean: float
    min: float
    max: float
    n: int


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(values: Sequence[float], digits: int = 2) -> Summary:
    return Summary(
        p50=round(percentile(values, 50), digits),
        p95=round(percentile(values, 95), digits),
        mean=round(statistics.fmean(values), digits),
        min=round(min(values), digits),
        max=round(max(values), digits),
        n=len(values),
    )


def machine() -> dict[str, object]:
    load = os.getloadavg()
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        # Other work on the machine skews every figure: a load near the core count means contention.
        "loadavg_at_start": [round(x, 2) for x in load],
    }


def cpu_seconds(procs: dict[str, list[psutil.Process]]) -> dict[str, float]:
    """User+system CPU seconds consumed so far by each component's live processes."""
    totals: dict[str, float] = {}
    for name, group in procs.items():
        total = 0.0
        for proc in group:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass  # exited since it was listed
        totals[name] = total
    return totals


def cpu_delta_ms(
    before: dict[str, float], after: dict[str, float], per: int, *, shared: set[str] | None = None
) -> dict[str, float]:
    """CPU milliseconds per unit of work (`per` turns or messages) for each component.

    Components in `shared` are the same process (e.g. an in-process worker and the bench client): only
    one of them is reported, under a joined name, since their CPU cannot be told apart.
    """
    out: dict[str, float] = {}
    seen_shared = False
    for name in after:
        if shared and name in shared:
            if seen_shared:
                continue
            seen_shared = True
            label = "+".join(sorted(shared))
        else:
            label = name
        out[label] = round((after[name] - before.get(name, 0.0)) * 1000 / max(per, 1), 2)
    return out
