"""The Shapes World training set of the diffusion transformer, rendered and cached as latents.

Clips are drawn per bucket (a frame count and canvas), each from its own seed, rendered,
encoded through the VAE and written as shards of :mod:`kinetoscope.data.latent_cache`. Scenes
with a held-out attribute combination are redrawn, so the evaluation can ask for
combinations the model never saw. Shards already on disk are kept: an interrupted build
continues where it stopped.
"""

from __future__ import annotations

import json
import math
import multiprocessing
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from kinetoscope.data.latent_cache import LatentBucket, read_shard, vae_fingerprint, write_shard
from kinetoscope.errors import KinetoscopeError
from kinetoscope.shapes.render import first_bounce, position_rng, render_clip, sample_scene, scene_boxes
from kinetoscope.shapes.spec import SceneSpec

# Attribute combinations never shown in training; `kinetoscope eval t2v` asks for them.
DEFAULT_HELD_OUT: tuple[dict[str, str], ...] = (
    {"color": "purple", "shape": "triangle"},
    {"color": "orange", "shape": "circle", "size": "small"},
    {"color": "green", "direction": "up-left"},
)


@dataclass(frozen=True)
class LatentBucketSpec:
    """Clips of one frame count and canvas: how many to cache, and their share of training batches."""

    num_frames: int
    height: int
    width: int
    clips: int
    weight: float


def _default_buckets() -> tuple[LatentBucketSpec, ...]:
    # Mostly the default 16 x 64 x 64 clip; the other aspect ratios and images keep the model
    # native-size (Sora's "sampling flexibility") and teach the one-frame image path.
    return (
        LatentBucketSpec(16, 64, 64, 12000, 0.74),
        LatentBucketSpec(16, 64, 112, 1200, 0.08),
        LatentBucketSpec(16, 112, 64, 1200, 0.08),
        LatentBucketSpec(1, 64, 64, 2400, 0.10),
    )


@dataclass
class ShapesLatentsConfig:
    """What the cache holds. Changing anything here means a new cache folder."""

    buckets: tuple[LatentBucketSpec, ...] = field(default_factory=_default_buckets)
    held_out: tuple[dict[str, str], ...] = DEFAULT_HELD_OUT
    # Two-object prompts are the harder target; half of all clips have two objects.
    two_object_fraction: float = 0.5
    # A share of the moving clips redrawn (start positions only) until every object goes this
    # many frames before its first wall bounce. In spec-uniform clips a quick object bounces by
    # frame 8 half the time, so the rest of the clip moves against its caption's direction and
    # the words barely predict the motion; 0 keeps the spec's distribution unchanged.
    min_straight_frames: int = 0
    straight_fraction: float = 1.0
    seed: int = 0
    shard_size: int = 400

    def __post_init__(self) -> None:
        self.buckets = tuple(b if isinstance(b, LatentBucketSpec) else LatentBucketSpec(**b) for b in self.buckets)
        self.held_out = tuple(dict(h) for h in self.held_out)
        if not self.buckets or any(b.clips < 1 or b.weight < 0 for b in self.buckets):
            raise ValueError("buckets need at least one clip each and non-negative weights")
        if sum(b.weight for b in self.buckets) <= 0:
            raise ValueError("bucket weights must not all be zero")
        if self.min_straight_frames < 0 or not 0 <= self.straight_fraction <= 1:
            raise ValueError(
                f"need min_straight_frames >= 0 and 0 <= straight_fraction <= 1, got "
                f"{self.min_straight_frames}, {self.straight_fraction}"
            )
        if self.seed < 0:
            raise ValueError(f"the data seed must be 0 or more, got {self.seed}")
        if not 0 <= self.two_object_fraction <= 1 or self.shard_size < 1:
            raise ValueError(
                f"need 0 <= two_object_fraction <= 1 and shard_size >= 1, got {self.two_object_fraction}, {self.shard_size}"
            )


def is_held_out(scene: SceneSpec, held_out: Sequence[dict[str, str]]) -> bool:
    """True when some object of ``scene`` has every attribute of some held-out combination."""
    return any(
        all(getattr(obj, key) == value for key, value in combo.items()) for obj in scene.objects for combo in held_out
    )


# Start positions tried per clip for a straight run before keeping the straightest seen (a
# quick large object needs a start within a few pixels of the far wall: ~1 draw in 10).
_STRAIGHT_TRIES = 200


def _position_seed(
    rng: np.random.Generator, scene: SceneSpec, num_frames: int, height: int, width: int, min_straight: int
) -> int:
    """A start-position seed; with ``min_straight``, one whose objects all go that many frames unbounced."""
    seed = int(rng.integers(2**31))
    if min_straight <= 0 or num_frames < 2:
        return seed
    need = min(min_straight, num_frames)
    best, best_run = seed, -1
    for _ in range(_STRAIGHT_TRIES):
        boxes = scene_boxes(scene, position_rng(seed), height=height, width=width, num_frames=num_frames)
        run = int(first_bounce(boxes).min())
        if run >= need:
            return seed
        if run > best_run:
            best, best_run = seed, run
        seed = int(rng.integers(2**31))
    return best


def _clip_job(job: tuple) -> tuple[np.ndarray, dict]:
    """Render clip ``index`` of a bucket; returns uint8 ``"t h w c"`` and its record."""
    seed, bucket, index, num_frames, height, width_, two_fraction, held_out, min_straight, straight_fraction = job
    rng = np.random.default_rng((seed, bucket, index))
    num_objects = 2 if rng.random() < two_fraction else 1
    while True:
        scene = sample_scene(rng, num_objects=num_objects)
        if not is_held_out(scene, held_out):
            break
    if min_straight > 0 and rng.random() >= straight_fraction:
        min_straight = 0
    position_seed = _position_seed(rng, scene, num_frames, height, width_, min_straight)
    clip = render_clip(scene, height=height, width=width_, num_frames=num_frames, seed=position_seed)
    record = {"text": clip.caption, "scene": scene.to_dict(), "seed": position_seed}
    return clip.frames, record


def _jobs(config: ShapesLatentsConfig, bucket: int, start: int, stop: int) -> list[tuple]:
    spec = config.buckets[bucket]
    return [
        (config.seed, bucket, i, spec.num_frames, spec.height, spec.width, config.two_object_fraction,
         config.held_out, config.min_straight_frames, config.straight_fraction)
        for i in range(start, stop)
    ]


def shard_name(bucket: int, shard: int) -> str:
    return f"b{bucket}_{shard:05d}.safetensors"


@torch.no_grad()
def _encode(vae, frames: np.ndarray, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(frames).to(device).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0        # b c t h w
    return vae.normalize(vae.encode(x).mode())


# What a cache folder was built from: kept shards are reused only for the same clips.
CACHE_CONFIG_NAME = "cache.json"


def _content(config: ShapesLatentsConfig) -> dict:
    """The settings that decide a cache's clips (bucket weights only pick batches), as JSON values."""
    content = asdict(config)
    for bucket in content["buckets"]:
        del bucket["weight"]
    return json.loads(json.dumps(content))


def _claim(out_dir: Path, config: ShapesLatentsConfig) -> None:
    """Record ``config`` in ``out_dir``, or refuse a folder that caches other clips."""
    path = out_dir / CACHE_CONFIG_NAME
    content = _content(config)
    if path.exists():
        found = json.loads(path.read_text())
        differ = sorted(k for k in content.keys() | found.keys() if content.get(k) != found.get(k))
        if differ:
            raise KinetoscopeError(
                f"{out_dir}: caches clips of another data config (differs in {', '.join(differ)}); use another folder"
            )
        return
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(content, indent=1) + "\n")
    partial.replace(path)


def build_shapes_latents(
    config: ShapesLatentsConfig,
    vae,
    out_dir: str | Path,
    *,
    workers: int = 1,
    batch_size: int = 16,
    progress: bool = True,
) -> Path:
    """Render, encode and write every bucket's clips into ``out_dir`` (skipping shards already there).

    The folder records ``config`` (``cache.json``); one that holds clips of another config is
    refused (KinetoscopeError) rather than mixed with these.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _claim(out_dir, config)
    vae_id = vae_fingerprint(vae)
    device = next(vae.parameters()).device
    todo = []
    for b, spec in enumerate(config.buckets):
        for s, start in enumerate(range(0, spec.clips, config.shard_size)):
            path = out_dir / shard_name(b, s)
            if path.exists():
                read_shard(path, vae_id)  # a kept shard must be readable and from this VAE
                continue
            todo.append((b, path, start, min(spec.clips, start + config.shard_size)))
    total = sum(stop - start for _, _, start, stop in todo)
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        with tqdm(total=total, desc="cache latents", unit="clip", disable=not progress or total == 0) as bar:
            for b, path, start, stop in todo:
                jobs = _jobs(config, b, start, stop)
                rendered: Iterator = pool.imap(_clip_job, jobs, chunksize=8) if pool else map(_clip_job, jobs)
                latents, records, frames = [], [], []
                for clip_frames, record in rendered:
                    frames.append(clip_frames)
                    records.append(record)
                    if len(frames) == batch_size:
                        latents.append(_encode(vae, np.stack(frames), device))
                        bar.update(len(frames))
                        frames = []
                if frames:
                    latents.append(_encode(vae, np.stack(frames), device))
                    bar.update(len(frames))
                write_shard(path, torch.cat(latents), records, vae_id)
    finally:
        if pool is not None:
            pool.terminate()
    return out_dir


# Validation clips come from a seed of their own, whatever the training clips' seed: runs on
# other training clips are compared on the same validation clips, which none of them trains on.
_VALIDATION_SEED = 2**31


def validation_config(config: ShapesLatentsConfig, clips: int) -> ShapesLatentsConfig:
    """``clips`` clips of ``config``'s first bucket (the default clip shape), drawn as the training
    clips are (same held-out combinations, same share of straight runs) but from a seed of their own."""
    if clips < 1:
        raise ValueError(f"validation clips must be at least 1, got {clips}")
    first = replace(config.buckets[0], clips=clips, weight=1.0)
    return replace(config, buckets=(first,), seed=_VALIDATION_SEED)


def load_shapes_latents(config: ShapesLatentsConfig, out_dir: str | Path, vae_id: str | None = None) -> list[LatentBucket]:
    """The cache's buckets in the order of ``config.buckets`` (every shard must be present)."""
    out_dir = Path(out_dir)
    buckets = []
    for b, spec in enumerate(config.buckets):
        shards = []
        for s in range(math.ceil(spec.clips / config.shard_size)):
            path = out_dir / shard_name(b, s)
            if not path.exists():
                raise KinetoscopeError(f"{path}: missing; build the cache first (it resumes where it stopped)")
            shards.append(read_shard(path, vae_id))
        buckets.append(LatentBucket(torch.cat([s.latents for s in shards]), [r for s in shards for r in s.records]))
    return buckets
