"""Timing on a shared machine: medians of repeats from ``torch.utils.benchmark``, with their spread."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from torch.utils.benchmark import Timer

# Seconds each measurement runs for; --quick divides them (benchmarks/__main__.py).
BUDGET = {"min_run_time": 2.0}


def measure(fn: Callable[[], Any], min_run_time: float | None = None) -> dict[str, float]:
    """Seconds per call of ``fn``: median and interquartile range over blocks of calls (one warm-up
    call first), run for at least ``min_run_time`` seconds."""
    fn()
    m = Timer(stmt="fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run_time or BUDGET["min_run_time"])
    return {"median": m.median, "iqr": m.iqr, "n": len(m.times)}


def summary(times: list[float]) -> dict[str, float]:
    """Median and range of per-step times measured inside a loop (the Trainer's)."""
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "n": len(times)}
