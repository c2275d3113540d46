"""``data filter``: keep the clips of a metadata table whose scores pass thresholds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from kinetoscope.data.curate.scorers import SCORER_COLUMNS
from kinetoscope.errors import KinetoscopeError


@dataclass
class ClipFilter:
    """Thresholds on numeric columns (inclusive) and switches; a row missing a thresholded value fails."""

    minimum: dict[str, float] = field(default_factory=dict)
    maximum: dict[str, float] = field(default_factory=dict)
    no_duplicates: bool = False
    no_static: bool = False
    no_chaotic: bool = False
    require_text: bool = False

    def check_columns(self, rows: Sequence[dict[str, str]]) -> None:
        """KinetoscopeError when a threshold names a column no row has a number in."""
        for column in {*self.minimum, *self.maximum}:
            if not rows:
                return
            if column not in rows[0]:
                numeric = [c for c in rows[0] if _number(rows[0][c]) is not None]
                raise KinetoscopeError(f"no column {column!r}; numeric columns: {', '.join(numeric)}")
            if all(_number(row[column]) is None for row in rows):
                hint = f" (curate with {SCORER_COLUMNS[column]} to fill it)" if column in SCORER_COLUMNS else ""
                raise KinetoscopeError(f"column {column!r} is empty in every row{hint}")

    def failures(self, row: dict[str, str]) -> list[str]:
        """The criteria ``row`` fails, as short names (``"motion<2"``, ``"duplicate"``)."""
        failed = []
        for column, bound in self.minimum.items():
            value = _number(row.get(column, ""))
            if value is None or value < bound:
                failed.append(f"{column}<{bound:g}")
        for column, bound in self.maximum.items():
            value = _number(row.get(column, ""))
            if value is None or value > bound:
                failed.append(f"{column}>{bound:g}")
        if self.no_duplicates and row.get("dup_of"):
            failed.append("duplicate")
        if self.no_static and row.get("motion_flag") == "static":
            failed.append("static")
        if self.no_chaotic and row.get("motion_flag") == "chaotic":
            failed.append("chaotic")
        if self.require_text and not (row.get("text") or "").strip():
            failed.append("no text")
        return failed


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def apply_filter(rows: Sequence[dict[str, str]], clip_filter: ClipFilter) -> tuple[list[dict[str, str]], dict[str, int]]:
    """The rows that pass, and how many rows failed each criterion (a row may fail several)."""
    clip_filter.check_columns(rows)
    kept, counts = [], {}
    for row in rows:
        failed = clip_filter.failures(row)
        for name in failed:
            counts[name] = counts.get(name, 0) + 1
        if not failed:
            kept.append(row)
    return kept, counts
