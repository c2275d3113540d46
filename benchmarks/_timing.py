"""Timing shared by the benchmarks (a helper module: ``make bench`` skips files starting with ``_``)."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch


def timing_arguments(doc: str) -> argparse.Namespace:
    """``--threads`` (applied to torch here) and ``--rounds``, the options of a benchmark that times rounds."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per row (default: 5)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


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
