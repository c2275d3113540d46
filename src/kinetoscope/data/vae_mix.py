"""The stream of training batches for the VAE: Shapes World, photo camera moves, lavfi patterns.

Each batch has one clip shape (frames, height, width) so it stacks into one tensor; shapes
are drawn from weighted buckets, most of them at 17 x 64 x 64, the size the shipped DiT
works at. 1-frame buckets are images: a causal VAE encodes the first frame on its own, so
training on images teaches the image path. The batch at step ``k`` is a pure function of
``(seed, k)``: a resumed run sees exactly the batches it would have seen, with no data state
to save.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kinetoscope.data import camera_moves, lavfi

SOURCES: tuple[str, ...] = ("shapes", "photos", "lavfi")
# Causal temporal convolutions pad every clip with 2 copies of its first frame, so a clip of t
# frames costs about as much as t + 2 frames: an image costs 3 (measured: a batch of images
# with as many pixels as four 17-frame clips took 2-3x as long).
_CAUSAL_PAD_FRAMES = 2


@dataclass(frozen=True)
class ClipBucket:
    """One clip shape of the mix and its share of batches."""

    num_frames: int
    height: int
    width: int
    weight: float

    @property
    def cost(self) -> int:
        """Relative compute of one clip: its pixels, the causal padding frames included."""
        return (self.num_frames + _CAUSAL_PAD_FRAMES) * self.height * self.width


_REFERENCE = ClipBucket(17, 64, 64, 1.0)


def _default_buckets() -> tuple[ClipBucket, ...]:
    return (
        ClipBucket(17, 64, 64, 0.40),
        ClipBucket(9, 64, 64, 0.10),
        ClipBucket(5, 64, 64, 0.05),
        ClipBucket(1, 64, 64, 0.12),
        ClipBucket(17, 64, 112, 0.07),
        ClipBucket(17, 112, 64, 0.07),
        ClipBucket(17, 32, 32, 0.06),
        ClipBucket(9, 128, 128, 0.05),
        ClipBucket(1, 128, 128, 0.04),
        ClipBucket(33, 64, 64, 0.04),
    )


@dataclass
class VAEMixConfig:
    """What the VAE trains on. Weights need not sum to one; they are normalised."""

    shapes_weight: float = 0.5
    photos_weight: float = 0.4
    # Test patterns are the hardest content (one-pixel text, chaotic cells) and the least like
    # anything the DiT will generate: a little of it widens the VAE, much of it wastes capacity.
    lavfi_weight: float = 0.1
    buckets: tuple[ClipBucket, ...] = field(default_factory=_default_buckets)
    # Clips per batch at 17 x 64 x 64, the DiT's working size; other buckets get as many clips
    # as cost the same compute (see ClipBucket.cost), so every step takes about as long.
    batch_size: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        self.buckets = tuple(b if isinstance(b, ClipBucket) else ClipBucket(**b) for b in self.buckets)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if min(self.shapes_weight, self.photos_weight, self.lavfi_weight) < 0 or not self.source_weights().any():
            raise ValueError("source weights must be non-negative and not all zero")
        if not self.buckets or any(b.weight < 0 for b in self.buckets) or sum(b.weight for b in self.buckets) <= 0:
            raise ValueError("buckets must be non-empty with non-negative weights, not all zero")
        for b in self.buckets:
            if (b.num_frames - 1) % 4 or b.height % 8 or b.width % 8 or min(b.height, b.width) < 32:
                raise ValueError(
                    f"bucket {b.num_frames}x{b.height}x{b.width}: frames must be 1 + 4k and sides multiples of 8, at least 32"
                )

    def source_weights(self) -> np.ndarray:
        lavfi_weight = self.lavfi_weight if lavfi.available() else 0.0
        return np.array([self.shapes_weight, self.photos_weight, lavfi_weight], dtype=np.float64)


@dataclass(frozen=True)
class Batch:
    """One training batch: uint8 ``frames`` ``"b t h w c"`` and the source of each clip."""

    frames: np.ndarray
    sources: tuple[str, ...]


def render_clip(source: str, seed: int, *, num_frames: int, height: int, width: int, split: str = "train") -> np.ndarray:
    """One clip, uint8 ``"t h w c"``, from ``source`` (one of ``SOURCES``); one seed, one clip.

    ``split`` picks training or held-out photos; Shapes World and lavfi clips have no fixed
    pool, so a held-out set of them is simply seeds the training stream never draws.
    """
    if source == "shapes":
        from kinetoscope.shapes.render import render_random_clip

        return render_random_clip(seed, height=height, width=width, num_frames=num_frames).frames
    if source == "photos":
        return camera_moves.photo_clip(seed, height=height, width=width, num_frames=num_frames, split=split)
    if source == "lavfi":
        return lavfi.lavfi_clip(seed, height=height, width=width, num_frames=num_frames)
    raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")


# Training seeds stay below this; held-out clips use seeds at and above it.
HELDOUT_SEED_BASE = 2**40


class VAEMix:
    """Deterministic batches of mixed clips: ``mix.batch(step)`` is the same on every call."""

    def __init__(self, config: VAEMixConfig) -> None:
        self.config = config
        self._bucket_p = np.array([b.weight for b in config.buckets], dtype=np.float64)
        self._bucket_p /= self._bucket_p.sum()
        weights = config.source_weights()
        self._source_p = weights / weights.sum()

    def clips_per_batch(self, bucket: ClipBucket) -> int:
        """Clips in a batch of this bucket: the compute of ``batch_size`` clips of 17 x 64 x 64."""
        clips = round(self.config.batch_size * _REFERENCE.cost / bucket.cost)
        return int(np.clip(clips, 1, 32 * self.config.batch_size))

    def batch(self, step: int) -> Batch:
        """The batch for training step ``step``."""
        rng = np.random.default_rng((self.config.seed, step))
        bucket = self.config.buckets[rng.choice(len(self.config.buckets), p=self._bucket_p)]
        count = self.clips_per_batch(bucket)
        sources = rng.choice(len(SOURCES), size=count, p=self._source_p)
        seeds = rng.integers(0, HELDOUT_SEED_BASE, size=count)
        frames = [
            render_clip(SOURCES[s], int(seed), num_frames=bucket.num_frames, height=bucket.height, width=bucket.width)
            for s, seed in zip(sources, seeds)
        ]
        return Batch(np.stack(frames), tuple(SOURCES[s] for s in sources))


def heldout_clips(source: str, count: int, *, num_frames: int = 17, height: int = 64, width: int = 64) -> np.ndarray:
    """``count`` evaluation clips, uint8 ``"b t h w c"``, never seen in training (for benchmarks)."""
    return np.stack(
        [
            render_clip(source, HELDOUT_SEED_BASE + i, num_frames=num_frames, height=height, width=width, split="heldout")
            for i in range(count)
        ]
    )
