"""Tables from finished work: one run's (or one shard's) records, and the merge of shard tables.

Rows are ordered by source name and first frame, whichever worker or machine made them, and
near-duplicates are marked in that order over the whole table, so shards 1..N merged give the
same ``metadata.csv`` as one run over everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from kinetoscope.data.curate.dedup import find_duplicates
from kinetoscope.data.curate.table import (
    REJECTED_COLUMNS,
    SOURCE_COLUMNS,
    parse_shard_name,
    read_metadata,
    read_table,
    table_name,
    write_metadata,
    write_table,
)
from kinetoscope.errors import KinetoscopeError


def _clip_order(row: dict) -> tuple[str, int]:
    return row["source"], int(row["start_frame"])


def mark_duplicates(rows: list[dict], max_distance: int) -> list[dict]:
    """Sort clip rows and set ``dup_of`` to the path of the kept clip each one repeats ('' if none)."""
    rows = sorted(rows, key=_clip_order)
    matches = find_duplicates([str(row.get("phash") or "") for row in rows], max_distance)
    for row, match in zip(rows, matches, strict=True):
        row["dup_of"] = "" if match is None else rows[match]["path"]
    return rows


def write_tables(
    records: Iterable[dict], out_dir: Path, shard: tuple[int, int] | None, max_distance: int
) -> dict[str, Path]:
    """Write the metadata, sources and rejected tables of ``records`` into ``out_dir``."""
    records = sorted(records, key=lambda r: r["source"])
    clips = [dict(row, path=str(out_dir / row["path"])) for r in records for row in r["clips"]]
    paths = {
        "metadata": write_metadata(mark_duplicates(clips, max_distance), out_dir / table_name("metadata", shard)),
        "sources": write_table([r["info"] for r in records if r["info"]], out_dir / table_name("sources", shard),
                               SOURCE_COLUMNS),
        "rejected": write_table([r for r in records if r["status"] == "rejected"],
                                out_dir / table_name("rejected", shard), REJECTED_COLUMNS),
    }  # fmt: skip
    return paths


def _shard_tables(folders: Sequence[Path]) -> dict[str, list[Path]]:
    """Each folder's shard tables (by kind), checked to be all N shards of one split."""
    found: dict[str, list[Path]] = {"metadata": [], "sources": [], "rejected": []}
    splits: dict[int, set[int]] = {}
    for folder in folders:
        if not folder.is_dir():
            raise KinetoscopeError(f"{folder}: no such folder")
        for path in sorted(folder.iterdir()):
            parsed = parse_shard_name(path.name)
            if parsed:
                kind, k, n = parsed
                found[kind].append(path)
                splits.setdefault(n, set()).add(k)
    if not found["metadata"]:
        raise KinetoscopeError(f"{', '.join(map(str, folders))}: no shard tables (metadata-K-of-N.csv) to merge")
    if len(splits) > 1:
        raise KinetoscopeError(f"shard tables of different splits ({', '.join(f'of {n}' for n in sorted(splits))})")
    (n, present), = splits.items()
    missing = sorted(set(range(1, n + 1)) - present)
    if missing:
        raise KinetoscopeError(f"shards {', '.join(f'{k}/{n}' for k in missing)} are missing; run them first")
    for kind, paths in found.items():
        if len(paths) != n:
            raise KinetoscopeError(f"expected {n} {kind}-K-of-{n}.csv tables, found {len(paths)}")
    return found


def merge_shards(folders: Sequence[Path], out_dir: Path, max_distance: int = 4) -> dict[str, Path]:
    """Merge every shard's tables found in ``folders`` into ``out_dir``'s three tables.

    Clip paths are rewritten relative to ``out_dir`` (clips stay where they are), and
    near-duplicates are marked again across all shards.
    """
    found = _shard_tables(folders)
    clips = [row for path in found["metadata"] for row in read_metadata(path)]
    sources = sorted((row for path in found["sources"] for row in read_table(path)), key=lambda r: r["source"])
    rejected = sorted((row for path in found["rejected"] for row in read_table(path)), key=lambda r: r["source"])
    for row in clips:
        row["dup_of"] = ""
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "metadata": write_metadata(mark_duplicates(clips, max_distance), out_dir / table_name("metadata")),
        "sources": write_table(sources, out_dir / table_name("sources"), SOURCE_COLUMNS),
        "rejected": write_table(rejected, out_dir / table_name("rejected"), REJECTED_COLUMNS),
    }
