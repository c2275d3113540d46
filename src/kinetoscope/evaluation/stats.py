"""How sure a suite's numbers are: intervals for a pass rate, and a paired test between two models.

An all-correct rate on 79 prompts moves by several prompts from the sampling noise alone (the
shipped model with a stochastic sampler, three draws of its noise: 22, 28 and 34 of 79
one-object prompts all-correct), so a change is only worth believing when it beats that. Two models run on the same suite (same prompts,
same seeds) are compared on the prompts where they disagree (McNemar's test): prompts both
pass or both fail say nothing about which is better.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a rate of ``successes`` in ``trials`` (95% at the default ``z``).

    Unlike the normal approximation it stays inside [0, 1] and is honest at rates near 0 or 1,
    where a small suite's all-correct rates sit.
    """
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1, got {successes} of {trials}")
    p = successes / trials
    denominator = 1 + z**2 / trials
    centre = (p + z**2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class PairedComparison:
    """Two models' pass/fail on the same items: both, only ``a``, only ``b``, neither, and the
    exact two-sided McNemar p-value of the difference (1.0 when they never disagree)."""

    both: int
    only_a: int
    only_b: int
    neither: int
    p_value: float

    @property
    def items(self) -> int:
        return self.both + self.only_a + self.only_b + self.neither


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: the chance of a split of the disagreements at least this
    uneven if each disagreement were a fair coin (binomial with p = 1/2)."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f"counts must be 0 or more, got {only_a}, {only_b}")
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def compare_paired(a: Sequence[bool], b: Sequence[bool]) -> PairedComparison:
    """Compare pass/fail lists of two models over the same items, in the same order."""
    if len(a) != len(b):
        raise ValueError(f"paired results need the same items, got {len(a)} and {len(b)}")
    both = sum(x and y for x, y in zip(a, b))
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    return PairedComparison(both, only_a, only_b, len(a) - both - only_a - only_b, mcnemar_exact(only_a, only_b))
