"""Two runs of one suite side by side: ``eval t2v --json`` or ``eval conditioning --json`` outputs.

Rows are paired by position and must name the same prompts (the same suite: same
``--per-group``/``--per-task`` and ``--seed``); each group (one- and two-object prompts, or a
conditioning task) gets both pass rates with their 95% intervals and McNemar's paired test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kinetoscope.errors import KinetoscopeError
from kinetoscope.evaluation.stats import PairedComparison, compare_paired, wilson_interval


@dataclass(frozen=True)
class GroupComparison:
    """One group's paired result: its name, the comparison, and each run's 95% interval."""

    group: str
    comparison: PairedComparison
    interval_a: tuple[float, float]
    interval_b: tuple[float, float]


def _group(row: dict) -> str:
    if "task" in row:
        return row["task"]
    return f"{row['objects']} object{'s' if row['objects'] != 1 else ''}"


def _passed(row: dict) -> bool:
    return bool(row["ok"] if "task" in row else row["all_correct"])


def load_rows(path: str | Path) -> list[dict]:
    """The rows of an ``eval ... --json`` output file; a KinetoscopeError names what is wrong."""
    path = Path(path)
    try:
        rows = json.loads(path.read_text())["rows"]
        for row in rows:
            _group(row), _passed(row), row["prompt"]
    except FileNotFoundError:
        raise KinetoscopeError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise KinetoscopeError(f"{path}: not the JSON of 'eval t2v --json' or 'eval conditioning --json' ({err})") from None
    if not rows:
        raise KinetoscopeError(f"{path}: holds no rows")
    return rows


def compare_runs(a: list[dict], b: list[dict]) -> list[GroupComparison]:
    """Per group, in the order the groups first appear: run ``a`` against run ``b``."""
    if len(a) != len(b) or any(x["prompt"] != y["prompt"] or _group(x) != _group(y) for x, y in zip(a, b)):
        raise KinetoscopeError("the two runs are not of the same suite (other prompts or counts); use the same --seed and size")
    out = []
    for group in dict.fromkeys(_group(r) for r in a):
        passed_a = [_passed(r) for r in a if _group(r) == group]
        passed_b = [_passed(r) for r in b if _group(r) == group]
        out.append(
            GroupComparison(
                group,
                compare_paired(passed_a, passed_b),
                wilson_interval(sum(passed_a), len(passed_a)),
                wilson_interval(sum(passed_b), len(passed_b)),
            )
        )
    return out
