"""Timing shared by the benchmarks (a helper module: ``make bench`` skips files starting with ``_``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_interleaved(
    runs: dict[str, Callable[[], object]], warmups: int, repeats: int
) -> dict[str, tuple[float, float]]:
    """(median, best) seconds per call for each closure, one call of each per round after ``warmups``
    rounds, so drift from neighbours on a shared machine hits every closure alike."""
    for _ in range(warmups):
        for fn in runs.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: (statistics.median(s), min(s)) for name, s in samples.items()}
