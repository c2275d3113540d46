"""Curating many sources: one job per source, in worker processes, resumable and never stopped by
a bad file.

A job probes and analyses its source in one decode pass, cuts the scenes into clips, writes
them and their scores, and saves a record (``OUT/.curate/<id>.json``) of the outcome, clip
rows or the reason for rejecting the file. The record is the unit of resumption: a rerun skips
every source whose record matches the file (size, modification time) and the options, so an
interrupted run loses at most the sources in flight. Any failure inside a job, expected (a
truncated file) or not, becomes a rejection with its stage and reason; the run goes on.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kinetoscope.data.curate.captions import (
    Segment,
    caption_from_segments,
    find_sidecar,
    load_captioner,
    read_sidecar,
)
from kinetoscope.data.curate.clips import ClipPlan, WrittenClip, write_clips
from kinetoscope.data.curate.config import CurateConfig
from kinetoscope.data.curate.dedup import HashMeter, clip_hash
from kinetoscope.data.curate.inputs import Source, in_shard
from kinetoscope.data.curate.motion import MotionMeter, clip_motion, motion_flag
from kinetoscope.data.curate.probe import ProbeResult, StageClock, analyse
from kinetoscope.data.curate.quality import QualityMeter, clip_quality
from kinetoscope.data.curate.scenes import SceneSplitter, cut_clips, scene_ranges
from kinetoscope.data.curate.scorers import SCORER_COLUMNS, load_scorer
from kinetoscope.data.curate.shards import write_tables
from kinetoscope.errors import KinetoscopeError
from kinetoscope.io.atomic import atomic_output
from kinetoscope.io.decode import rate_from_times

RECORDS_DIR = ".curate"
CLIPS_DIR = "clips"
STAGES = ("probe", "scenes", "motion", "quality", "dedup", "captions", "scores", "write")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Models are loaded once per worker process, keyed by what loads them.
_MODELS: dict[tuple, object] = {}


def record_path(out_dir: Path, source: Source) -> Path:
    return out_dir / RECORDS_DIR / f"{source.id}.json"


def _stat(path: Path) -> dict:
    try:
        stat = path.stat()
    except OSError:
        return {"size": None, "mtime_ns": None}
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def load_record(out_dir: Path, source: Source, config: CurateConfig) -> dict | None:
    """The source's finished record when it is still valid: same file, same options, clips present."""
    path = record_path(out_dir, source)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    current = {"fingerprint": config.fingerprint(), **_stat(source.path)}
    if any(record.get(key) != value for key, value in current.items()):
        return None
    if not all((out_dir / row["path"]).is_file() for row in record.get("clips", [])):
        return None
    return record


def _model(kind: str, spec: str, option: str | None) -> object:
    key = (kind, spec, option)
    if key not in _MODELS:
        _MODELS[key] = load_captioner(spec, option) if kind == "captioner" else load_scorer(spec, option or "")
    return _MODELS[key]


def _reason(err: Exception, path: Path) -> str:
    """An error line without the file name the table already holds."""
    message = str(err).splitlines()[0] if str(err) else type(err).__name__
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _clip_name(source: Source, number: int) -> str:
    stem = _UNSAFE.sub("_", Path(source.name).stem).strip("_")[:60] or "video"
    # The full id: corpora often hold thousands of files of one name ("clip.mp4") in different folders.
    return f"{CLIPS_DIR}/{source.id[:2]}/{stem}-{source.id}-{number:04d}.mp4"


@dataclass
class _Analysis:
    """The per-frame analysers of one source."""

    splitter: SceneSplitter
    motion: MotionMeter = field(default_factory=MotionMeter)
    quality: QualityMeter = field(default_factory=QualityMeter)
    hashes: HashMeter = field(default_factory=HashMeter)
    # The flow speeds as an array, made once after the pass for every clip's mean.
    speed: np.ndarray = field(default_factory=lambda: np.empty(0))

    def all(self) -> list:
        return [self.splitter, self.motion, self.quality, self.hashes]


def _source_row(source: Source, probe: ProbeResult) -> dict:
    info = probe.info
    # Players show the picture turned by the rotation; the tables give the size as shown.
    height, width = (info.width, info.height) if info.rotation % 180 else (info.height, info.width)
    return {
        "source": source.name, "num_frames": info.num_frames, "fps": info.fps, "height": height, "width": width,
        "duration": info.duration, "codec": info.codec, "container": info.container, "pix_fmt": info.pix_fmt,
        "rotation": info.rotation, "has_audio": info.has_audio, "vfr": probe.is_vfr,
    }  # fmt: skip


def _no_clip_reason(config: CurateConfig, probe: ProbeResult, scenes: list[tuple[int, int]]) -> str:
    longest = max(probe.ends[e - 1] - probe.times[s] for s, e in scenes)
    frames = probe.info.num_frames
    if len(scenes) == 1:
        return (f"{frames} frame{'s' * (frames != 1)} ({longest:.3g} s), shorter than the shortest clip "
                f"(--min-seconds {config.min_seconds:g})")  # fmt: skip
    return f"no scene of its {len(scenes)} lasts --min-seconds {config.min_seconds:g} (the longest {longest:.3g} s)"


def _remove_old_clips(out_dir: Path, source: Source) -> None:
    """Delete the clips of an outdated record (other options, a changed file): a redo may cut fewer."""
    try:
        old = json.loads(record_path(out_dir, source).read_text())
    except (OSError, ValueError):
        return
    for row in old.get("clips", []):
        (out_dir / row["path"]).unlink(missing_ok=True)


class _Stages:
    """Times each stage of a job on its clock and remembers the current one (for a rejection)."""

    def __init__(self, clock: StageClock) -> None:
        self.clock, self.current = clock, "captions"

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.current = name
        tic = time.perf_counter()
        try:
            yield
        finally:
            self.clock.add(name, time.perf_counter() - tic)


def _read_captions(source: Source, config: CurateConfig) -> tuple[list[Segment] | None, Path | None, str]:
    """The sidecar's segments (None without one), its path, and a warning when it is unreadable."""
    sidecar = find_sidecar(source.path) if config.sidecars else None
    if sidecar is None:
        return None, None, ""
    try:
        return read_sidecar(sidecar), sidecar, ""
    except KinetoscopeError as err:
        return None, sidecar, f"caption file ignored: {_reason(err, sidecar)}"


def _plan(source: Source, probe: ProbeResult, spans: list, out_dir: Path) -> list[ClipPlan]:
    """Where each clip goes and its rate (the timestamps' rate: VFR sources become constant-rate clips)."""
    plans, ends = [], probe.ends
    for number, (_, (start, end)) in enumerate(spans):
        last = ends[end - 1] - probe.times[end - 1]
        fps = rate_from_times(list(probe.times[start:end]), last, None) if end - start > 1 else probe.info.fps
        plans.append(ClipPlan(start, end, out_dir / _clip_name(source, number), fps))
    return plans


def _clip_row(
    job: tuple[Source, CurateConfig, Path], probe: ProbeResult, analysis: _Analysis, span: tuple,
    plan: ClipPlan, clip: WrittenClip, segments: list[Segment] | None, stages: _Stages,
) -> dict:  # fmt: skip
    """One clip's metadata row: where it comes from, then each stage's scores."""
    source, config, out_dir = job
    scene, (start, end) = span
    start_time = probe.times[start] - probe.times[0]
    duration = probe.ends[end - 1] - probe.times[start]
    row = {
        "path": plan.path.relative_to(out_dir).as_posix(), "num_frames": clip.num_frames, "height": clip.height,
        "width": clip.width, "fps": plan.fps, "aspect_ratio": clip.height / clip.width,
        "resolution": clip.height * clip.width, "source": source.name, "start_frame": start, "end_frame": end,
        "start_time": start_time, "duration": duration, "scene": scene, "text": "", "text_source": "",
    }  # fmt: skip
    with stages("motion"):
        row["motion"] = clip_motion(analysis.speed, start, end)
        row["motion_flag"] = motion_flag(row["motion"], config.static_motion, config.chaotic_motion)
    with stages("quality"):
        row.update(clip_quality(analysis.quality, start, end))
    with stages("dedup"):
        row["phash"] = clip_hash(analysis.hashes.hashes, start, end)
    with stages("captions"):
        if segments is not None:
            row["text"] = caption_from_segments(segments, start_time, start_time + duration)
            row["text_source"] = "sidecar"
        elif config.captioner:
            captioner = _model("captioner", config.captioner, config.caption_prompt)
            row["text"], row["text_source"] = captioner.caption(clip.samples), "model"
    with stages("scores"):
        for column, flag in SCORER_COLUMNS.items():
            spec = config.aesthetic_model if column == "aesthetic" else config.text_model
            if spec:
                row[column] = _model("scorer", spec, flag).score(clip.samples)
    return row


def curate_source(job: tuple[Source, CurateConfig, Path]) -> dict:
    """Curate one source into ``out_dir`` and save its record; never raises for a bad file."""
    source, config, out_dir = job
    stages = _Stages(StageClock())
    record: dict = {"source": source.name, "id": source.id, "fingerprint": config.fingerprint(), **_stat(source.path)}
    record.update(status="rejected", stage="probe", reason="", info=None, clips=[])
    planned: list[ClipPlan] = []
    _remove_old_clips(out_dir, source)
    try:
        with stages("captions"):
            segments, sidecar, warning = _read_captions(source, config)
        stages.current = "probe"  # the pass times probing and each analyser on the clock itself
        analysis = _Analysis(SceneSplitter(config.scene_threshold, config.min_scene_seconds))
        analysis.quality.block_interval = min(0.5, config.min_seconds / 2)
        probe = analyse(source.path, config.analysis_size, analysis.all(), stages.clock)
        record["info"] = _source_row(source, probe) | {"caption_file": sidecar.name if sidecar else "", "warning": warning}
        with stages("scenes"):
            scenes = scene_ranges(analysis.splitter.cuts(), probe.info.num_frames)
            spans = [(k, clip) for k, scene in enumerate(scenes)
                     for clip in cut_clips(scene, probe.times, probe.ends, config.min_seconds, config.max_seconds)]  # fmt: skip
            record["info"].update(scenes=len(scenes), clips=len(spans))
            if not spans:
                raise KinetoscopeError(_no_clip_reason(config, probe, scenes))
        with stages("write"):
            planned = _plan(source, probe, spans, out_dir)
            written = write_clips(source.path, planned, short_side=config.short_side, crf=config.crf)
        analysis.speed = np.asarray(analysis.motion.speed)
        rows = [_clip_row(job, probe, analysis, span, plan, clip, segments, stages)
                for span, plan, clip in zip(spans, planned, written, strict=True)]  # fmt: skip
        record.update(status="kept", stage="", clips=rows)
    except KinetoscopeError as err:
        record.update(stage=stages.current, reason=_reason(err, source.path))
    except Exception as err:  # a bug or a library failing on an odd file: recorded, never fatal
        record.update(stage=stages.current, reason=f"unexpected {type(err).__name__}: {_reason(err, source.path)}")
    if record["status"] == "rejected":
        record["clips"] = []
        for plan in planned:
            plan.path.unlink(missing_ok=True)
    record["seconds"] = stages.clock.seconds
    with atomic_output(record_path(out_dir, source)) as temporary:
        temporary.write_text(json.dumps(record))
    return record


def _init_worker() -> None:
    # One thread per process: the pool is the parallelism; torch (a captioner, a scorer) and
    # OpenCV would otherwise each start a thread per core in every worker.
    os.environ["OMP_NUM_THREADS"] = "1"
    import cv2

    cv2.setNumThreads(1)


@dataclass
class CurateSummary:
    """How a run went: inputs of its shard, sources redone and skipped, clips, rejections, tables."""

    inputs: int
    processed: int
    skipped: int
    clips: int
    rejected: int
    tables: dict[str, Path]
    seconds: dict[str, float]


def curate(
    sources: Iterable[Source],
    out_dir: Path,
    config: CurateConfig,
    *,
    workers: int = 1,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
) -> CurateSummary:
    """Curate the ``sources`` of ``shard`` into ``out_dir`` and write its tables.

    Ctrl-C writes the tables of the sources finished so far, then raises KeyboardInterrupt;
    the next run continues from the records.
    """
    mine = [s for s in sources if in_shard(s, shard)]
    out_dir.mkdir(parents=True, exist_ok=True)
    # Load the models here first: a bad model path is the user's error, to fail the run at once
    # (KinetoscopeError), not to reject every source one by one. Workers load their own copies.
    if config.captioner:
        _model("captioner", config.captioner, config.caption_prompt)
    for column, flag in SCORER_COLUMNS.items():
        spec = config.aesthetic_model if column == "aesthetic" else config.text_model
        if spec:
            _model("scorer", spec, flag)
    records: dict[str, dict] = {}
    for source in mine:
        record = load_record(out_dir, source, config)
        if record is not None:
            records[source.name] = record
    todo = [s for s in mine if s.name not in records]
    skipped = len(records)
    seconds = dict.fromkeys(STAGES, 0.0)
    jobs = [(source, config, out_dir) for source in todo]
    pool = multiprocessing.get_context("spawn").Pool(workers, _init_worker) if workers > 1 and jobs else None
    try:
        results = pool.imap_unordered(curate_source, jobs) if pool else map(curate_source, jobs)
        with tqdm(total=len(mine), initial=skipped, desc="curate", unit="file", disable=not progress) as bar:
            for record in results:
                records[record["source"]] = record
                for stage, spent in record["seconds"].items():
                    seconds[stage] = seconds.get(stage, 0.0) + spent
                bar.update(1)
    except KeyboardInterrupt:
        write_tables(records.values(), out_dir, shard, config.dedup_distance)
        raise
    finally:
        if pool is not None:
            pool.terminate()
    tables = write_tables(records.values(), out_dir, shard, config.dedup_distance)
    kept = [r for r in records.values() if r["status"] == "kept"]
    return CurateSummary(
        inputs=len(mine), processed=len(todo), skipped=skipped, clips=sum(len(r["clips"]) for r in kept),
        rejected=len(records) - len(kept), tables=tables, seconds=seconds,
    )  # fmt: skip


def throughput(clips: int, seconds: dict[str, float]) -> dict[str, float]:
    """Clips per second of each stage (inf for a stage that took no time)."""
    return {stage: clips / spent if spent > 0 else math.inf for stage, spent in seconds.items()}
