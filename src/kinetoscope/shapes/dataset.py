"""Shapes World sample sets: clip files plus a ``metadata.csv`` that training reads.

The CSV follows Open-Sora's schema (``path, text, num_frames, height, width, aspect_ratio,
resolution, fps``, with ``aspect_ratio`` = height / width and ``path`` relative to the set's
folder) and adds the ground truth: ``background``, ``objects`` (a JSON list of
``{color, shape, size, direction, speed}``) and the clip's ``seed``.

Clip i's seed derives from (set seed, i) alone, and its canvas, duration, object count and
scene are drawn from that seed, so a set is the same whatever the number of workers. Any row
can be re-rendered exactly: ``render_clip(scene_from_row(row), height=, width=, num_frames=,
seed=)``, since the seed places the objects.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kinetoscope.io.atomic import atomic_output
from kinetoscope.shapes import spec
from kinetoscope.shapes.render import RenderedClip, render_random_clip
from kinetoscope.shapes.spec import SceneSpec

COLUMNS = (
    "path", "text", "num_frames", "height", "width", "aspect_ratio", "resolution", "fps",
    "background", "objects", "seed",
)  # fmt: skip
FORMATS = ("mp4", "gif")
CLIPS_DIR = "clips"
METADATA = "metadata.csv"
# The render module seeds its scene and position streams with (seed, 0) and (seed, 1);
# the per-clip choice of canvas, duration and object count takes a third.
_PLAN_STREAM = 2


@dataclass(frozen=True)
class ShapesSetConfig:
    """What a sample set mixes; each clip picks one of each list, uniformly, from its own seed."""

    num: int = 64
    sizes: tuple[tuple[int, int], ...] = ((spec.DEFAULT_HEIGHT, spec.DEFAULT_WIDTH),)  # (height, width)
    num_frames: tuple[int, ...] = (spec.DEFAULT_NUM_FRAMES,)
    objects: tuple[int, ...] = (1, 2)
    seed: int = 0
    format: str = "mp4"  # one-frame clips are written as .png whatever this says

    def __post_init__(self) -> None:
        if self.num < 1:
            raise ValueError(f"num {self.num} must be at least 1")
        if self.seed < 0:
            raise ValueError(f"seed {self.seed} must be 0 or more")
        if not self.sizes or not self.num_frames or not self.objects:
            raise ValueError("sizes, num_frames and objects each need at least one value")
        for height, width in self.sizes:
            spec.validate_canvas(height, width, spec.DEFAULT_NUM_FRAMES)
        for frames in self.num_frames:
            spec.validate_canvas(spec.DEFAULT_HEIGHT, spec.DEFAULT_WIDTH, frames)
        for count in self.objects:
            if count not in (1, 2):
                raise ValueError(f"objects {count} must be 1 or 2")
        if self.format not in FORMATS:
            raise ValueError(f"format {self.format!r} must be one of {', '.join(FORMATS)}")


@dataclass(frozen=True)
class ClipPlan:
    """One clip of a set before it is rendered."""

    index: int
    seed: int
    height: int
    width: int
    num_frames: int
    num_objects: int

    def render(self) -> RenderedClip:
        return render_random_clip(
            self.seed, height=self.height, width=self.width, num_frames=self.num_frames, num_objects=self.num_objects
        )


def clip_seed(seed: int, index: int) -> int:
    """Clip ``index``'s seed in the set seeded ``seed``: a 32-bit hash of the pair."""
    return int(np.random.SeedSequence((seed, index)).generate_state(1)[0])


def plan_clip(config: ShapesSetConfig, index: int) -> ClipPlan:
    """Pick clip ``index``'s canvas, duration and object count from its seed."""
    seed = clip_seed(config.seed, index)
    rng = np.random.default_rng((seed, _PLAN_STREAM))
    height, width = config.sizes[int(rng.integers(len(config.sizes)))]
    num_frames = config.num_frames[int(rng.integers(len(config.num_frames)))]
    num_objects = config.objects[int(rng.integers(len(config.objects)))]
    return ClipPlan(index, seed, height, width, num_frames, num_objects)


def clip_filename(index: int, num_frames: int, format: str) -> str:
    """``clips/000042.mp4``, relative to the set's folder; a one-frame clip is an image."""
    suffix = "png" if num_frames == 1 else format
    return f"{CLIPS_DIR}/{index:06d}.{suffix}"


def metadata_row(clip: RenderedClip, path: str, seed: int) -> dict[str, str | int | float]:
    """The CSV row describing ``clip`` stored at ``path`` (relative to the set's folder)."""
    return {
        "path": path,
        "text": clip.caption,
        "num_frames": clip.num_frames,
        "height": clip.height,
        "width": clip.width,
        "aspect_ratio": round(clip.height / clip.width, 4),
        "resolution": clip.height * clip.width,
        "fps": clip.fps,
        "background": clip.scene.background,
        "objects": json.dumps(clip.scene.to_dict()["objects"]),
        "seed": seed,
    }


def write_clip(clip: RenderedClip, out_dir: Path, path: str, seed: int) -> dict[str, str | int | float]:
    """Write ``clip`` to ``out_dir / path`` (format by suffix) and return its metadata row."""
    # Imported here: the video module pulls in PyAV, which only writing needs.
    from kinetoscope.io.video import write_video

    write_video(out_dir / path, clip.frames, clip.fps)
    return metadata_row(clip, path, seed)


def write_metadata(rows: Iterable[dict], path: Path) -> Path:
    """Write rows as CSV with :data:`COLUMNS`, all at once (temporary file, then rename)."""
    with atomic_output(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_metadata(path: Path) -> list[dict[str, str]]:
    """The rows of a ``metadata.csv``, as strings."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def scene_from_row(row: dict[str, str]) -> SceneSpec:
    """The ground-truth scene of a metadata row."""
    return SceneSpec.from_dict({"background": row["background"], "objects": json.loads(row["objects"])})


def _render_and_write(job: tuple[ShapesSetConfig, int, Path]) -> dict[str, str | int | float]:
    config, index, out_dir = job
    plan = plan_clip(config, index)
    clip = plan.render()
    return write_clip(clip, out_dir, clip_filename(index, plan.num_frames, config.format), plan.seed)


def _rows(config: ShapesSetConfig, out_dir: Path, workers: int) -> Iterator[dict[str, str | int | float]]:
    jobs = [(config, index, out_dir) for index in range(config.num)]
    if workers == 1:
        yield from map(_render_and_write, jobs)
        return
    # spawn, not fork: a parent that has already started threads (torch, tqdm) can deadlock a forked child.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(_render_and_write, jobs, chunksize=max(1, min(16, config.num // (4 * workers))))


def write_shapes_set(config: ShapesSetConfig, out_dir: Path, *, workers: int = 1, progress: bool = True) -> Path:
    """Render ``config.num`` clips into ``out_dir/clips/`` and write ``out_dir/metadata.csv``.

    Returns the metadata path. The CSV is written last and atomically, so a set whose
    metadata exists is complete. ``workers`` > 1 renders in a process pool; rows keep clip order.
    """
    from tqdm import tqdm

    if workers < 1:
        raise ValueError(f"workers {workers} must be at least 1")
    out_dir = Path(out_dir)
    (out_dir / CLIPS_DIR).mkdir(parents=True, exist_ok=True)
    bar = tqdm(_rows(config, out_dir, workers), total=config.num, desc="shapes", unit="clip", disable=not progress)
    rows = list(bar)
    return write_metadata(rows, out_dir / METADATA)
