"""What to curate: the video files under a folder or listed in a CSV, and which shard takes each."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from kinetoscope.errors import KinetoscopeError

# Containers FFmpeg reads that hold video; other files in a folder (sidecar captions, notes)
# are not inputs. A listed file is an input whatever its suffix.
VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .mpg .mpeg .ts .mts .m2ts .flv .wmv .3gp .ogv .gif".split()
)


@dataclass(frozen=True)
class Source:
    """One input: ``name`` as the tables record it, ``path`` where it is read."""

    name: str
    path: Path

    @property
    def id(self) -> str:
        """A stable short id from the name: names the source's record and its clips' folder."""
        return hashlib.sha1(self.name.encode()).hexdigest()[:16]


def list_sources(location: Path, exclude: Path | None = None) -> list[Source]:
    """The inputs of a folder (recursive, by suffix, hidden names skipped) or of a CSV of paths.

    A folder's inputs are named by their path inside it. A CSV lists one path per row, in a
    ``path`` column when its header has one, else in the first column; relative paths are
    relative to the CSV's folder, and names are the paths as written. ``exclude`` (the
    output folder, when it lies inside the input folder) is never read from.
    """
    if location.is_dir():
        return _folder_sources(location, exclude)
    if location.is_file():
        return _csv_sources(location)
    raise KinetoscopeError(f"{location}: no such folder or CSV file")


def _folder_sources(folder: Path, exclude: Path | None) -> list[Source]:
    excluded = exclude.resolve() if exclude is not None else None
    sources = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or path.suffix.lower() not in VIDEO_SUFFIXES:
            continue
        if excluded is not None and path.resolve().is_relative_to(excluded):
            continue
        if not path.is_dir():
            sources.append(Source(relative.as_posix(), path))
    return sources


def _csv_sources(table: Path) -> list[Source]:
    try:
        with open(table, newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise KinetoscopeError(f"{table}: not a readable CSV of video paths ({err})") from None
    column = 0
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if "path" in header:
        column, rows = header.index("path"), rows[1:]
    sources, seen = [], set()
    for number, row in enumerate(rows, start=1):
        name = row[column].strip() if column < len(row) else ""
        if not name:
            raise KinetoscopeError(f"{table}: row {number} has no path")
        if name not in seen:
            seen.add(name)
            path = Path(name).expanduser()
            sources.append(Source(name, path if path.is_absolute() else table.parent / path))
    return sources


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 1 <= K <= N."""
    k, sep, n = text.partition("/")
    if not sep or not k.strip().isdigit() or not n.strip().isdigit() or not 1 <= int(k) <= int(n):
        raise KinetoscopeError(f"--shard: {text!r} is not K/N with 1 <= K <= N, e.g. 3/8")
    return int(k), int(n)


def in_shard(source: Source, shard: tuple[int, int] | None) -> bool:
    """Whether ``source`` belongs to shard (K, N): by a hash of its name, so every machine agrees
    whatever order it lists the inputs in, and adding files does not move the others."""
    if shard is None:
        return True
    k, n = shard
    return int(source.id, 16) % n == k - 1
