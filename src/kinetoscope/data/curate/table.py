"""The three tables of a curated folder, read and written as CSV (atomically).

``metadata.csv``: one row per clip, Open-Sora's columns first (``path`` relative to the
table's folder, ``text``, ``num_frames``, ``height``, ``width``, ``fps``, ``aspect_ratio`` =
height / width, ``resolution`` = height x width), then where the clip comes from and its
scores. ``sources.csv``: what probing learned about every readable input. ``rejected.csv``:
every input that gave no clip, with the stage and the reason. Kept clips' sources plus
rejected inputs are all the inputs. A shard K of N writes ``metadata-K-of-N.csv`` etc.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from kinetoscope.errors import KinetoscopeError
from kinetoscope.io.atomic import atomic_output

OPEN_SORA_COLUMNS = ("path", "text", "num_frames", "height", "width", "fps", "aspect_ratio", "resolution")
ORIGIN_COLUMNS = ("source", "start_frame", "end_frame", "start_time", "duration", "scene", "text_source")
SCORE_COLUMNS = (
    "motion", "motion_flag", "sharpness", "brightness", "clipped", "blockiness",
    "black_frames", "solid_frames", "letterbox", "aesthetic", "text_overlay", "phash", "dup_of",
)  # fmt: skip
METADATA_COLUMNS = OPEN_SORA_COLUMNS + ORIGIN_COLUMNS + SCORE_COLUMNS
SOURCE_COLUMNS = (
    "source", "num_frames", "fps", "height", "width", "duration", "codec", "container", "pix_fmt",
    "rotation", "has_audio", "vfr", "scenes", "clips", "caption_file", "warning",
)  # fmt: skip
REJECTED_COLUMNS = ("source", "stage", "reason")
TABLES = {"metadata": METADATA_COLUMNS, "sources": SOURCE_COLUMNS, "rejected": REJECTED_COLUMNS}
_SHARD_NAME = re.compile(r"^(metadata|sources|rejected)-(\d+)-of-(\d+)\.csv$")


def table_name(kind: str, shard: tuple[int, int] | None = None) -> str:
    """``metadata.csv``, or ``metadata-3-of-8.csv`` for shard 3 of 8."""
    return f"{kind}.csv" if shard is None else f"{kind}-{shard[0]}-of-{shard[1]}.csv"


def parse_shard_name(name: str) -> tuple[str, int, int] | None:
    """(kind, K, N) of a shard table's file name, else None."""
    match = _SHARD_NAME.match(name)
    return (match[1], int(match[2]), int(match[3])) if match else None


def format_value(value: object) -> str:
    """CSV text of a value: None and NaN empty, floats to 6 significant digits, bools 0/1."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_table(rows: Iterable[dict], path: Path, columns: Sequence[str]) -> Path:
    """Write ``rows`` (missing columns empty, others ignored) to ``path`` in one step."""
    with atomic_output(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: format_value(row.get(key)) for key in columns})
    return path


def read_table(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV table as strings; KinetoscopeError names an unreadable one."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise KinetoscopeError(f"{path}: not a readable CSV table ({getattr(err, 'strerror', None) or err})") from None


# Columns holding a clip's file: relative to the table's folder on disk, absolute in memory.
PATH_COLUMNS = ("path", "dup_of")


def read_metadata(path: Path) -> list[dict[str, str]]:
    """A metadata table's rows with ``path`` (and ``dup_of``) made absolute."""
    rows = read_table(path)
    if rows and "path" not in rows[0]:
        raise KinetoscopeError(f"{path}: has no 'path' column; is it a metadata.csv?")
    for row in rows:
        for column in PATH_COLUMNS:
            if row.get(column):
                row[column] = str((path.parent / row[column]).resolve())
    return rows


def _relative(value: str, folder: Path) -> str:
    return Path(os.path.relpath(Path(value).resolve(), folder)).as_posix() if value else value


def write_metadata(rows: Iterable[dict], path: Path) -> Path:
    """Write clip rows whose paths are absolute (or relative to the cwd) relative to ``path``'s folder."""
    folder = path.parent.resolve()
    rebased = [{**row, **{c: _relative(row.get(c) or "", folder) for c in PATH_COLUMNS}} for row in rows]
    columns = list(METADATA_COLUMNS) + [key for key in (rebased[0] if rebased else {}) if key not in METADATA_COLUMNS]
    return write_table(rebased, path, columns)
