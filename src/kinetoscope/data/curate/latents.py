"""Curated clips into the latent cache DiT training reads (:mod:`kinetoscope.data.latent_cache`).

Every clip is cut to a bucket: a frame count of ``1 + T k`` (T the VAE's temporal compression,
so the causal VAE needs no padding) and a size of about ``resolution`` squared pixels at the
listed aspect ratio nearest the clip's, with sides a multiple of the VAE's spatial compression
times the DiT's 2x2 patch. Frames are scaled to cover the bucket and centre-cropped (Open-Sora's
``resize_crop``). Each bucket's clips go into shards of ``shard_size``, named by the bucket;
a shard already on disk is kept after a check that it holds the clips planned for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from tqdm import tqdm

from kinetoscope.data.latent_cache import read_shard, vae_fingerprint, write_shard
from kinetoscope.errors import KinetoscopeError
from kinetoscope.io.video import read_video
from kinetoscope.transformer.config import DiTConfig, patch_for_vae



@dataclass(frozen=True)
class ClipLatentsConfig:
    """How clips become latents; the defaults match the shipped CPU models' 17 x 64 x 64 scale."""

    num_frames: int = 17
    resolution: int = 64
    stride: int = 1
    # width:height, as ratios are usually written; a clip takes the nearest in log ratio.
    aspect_ratios: tuple[tuple[int, int], ...] = ((1, 1), (4, 3), (3, 4), (16, 9), (9, 16), (21, 9), (9, 21))
    shard_size: int = 256
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.resolution < 16 or self.stride < 1:
            raise ValueError(
                f"need num_frames >= 1, resolution >= 16 and stride >= 1, got "
                f"{self.num_frames}, {self.resolution}, {self.stride}"
            )
        if self.shard_size < 1 or self.batch_size < 1 or not self.aspect_ratios:
            raise ValueError("shard_size and batch_size must be at least 1, and aspect_ratios not empty")


def bucket_size(height: int, width: int, config: ClipLatentsConfig, multiple: int) -> tuple[int, int]:
    """(H, W) of the bucket for a ``height`` x ``width`` clip: the nearest listed aspect ratio
    (in log ratio), about ``resolution**2`` pixels, sides multiples of ``multiple``."""
    ratio = math.log(height / width)
    w_ratio, h_ratio = min(config.aspect_ratios, key=lambda r: abs(math.log(r[1] / r[0]) - ratio))
    scale = config.resolution / math.sqrt(w_ratio * h_ratio)
    return (max(multiple, round(h_ratio * scale / multiple) * multiple),
            max(multiple, round(w_ratio * scale / multiple) * multiple))  # fmt: skip


def frame_count(available: int, config: ClipLatentsConfig, temporal: int) -> int:
    """The largest ``1 + temporal * k`` frames within the clip (after the stride) and ``num_frames``."""
    usable = min(math.ceil(available / config.stride), config.num_frames)
    return 1 + (usable - 1) // temporal * temporal


def resize_crop(frames: np.ndarray, height: int, width: int) -> torch.Tensor:
    """uint8 ``"t h w c"`` scaled to cover ``height x width`` and centre-cropped: float ``"c t h w"`` in [-1, 1]."""
    x = rearrange(torch.from_numpy(frames), "t h w c -> t c h w").float()
    scale = max(height / x.shape[2], width / x.shape[3])
    size = (max(height, round(x.shape[2] * scale)), max(width, round(x.shape[3] * scale)))
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    x = x[:, :, top : top + height, left : left + width]
    return rearrange(x, "t c h w -> c t h w") / 127.5 - 1.0


def plan_buckets(rows: Sequence[dict[str, str]], config: ClipLatentsConfig, vae) -> dict[tuple[int, int, int], list[dict]]:
    """Clip rows grouped by bucket ``(frames, height, width)``, in table order within each."""
    # Latents must split evenly into the patches `train dit` gives this VAE by default.
    patch = patch_for_vae(DiTConfig().patch_size, vae.spatial_compression)
    multiple = vae.spatial_compression * max(patch[1:])
    buckets: dict[tuple[int, int, int], list[dict]] = {}
    for row in rows:
        try:
            frames, height, width = int(row["num_frames"]), int(row["height"]), int(row["width"])
        except (KeyError, ValueError):
            raise KinetoscopeError(f"{row.get('path')}: its row lacks num_frames, height or width") from None
        key = (frame_count(frames, config, vae.temporal_compression), *bucket_size(height, width, config, multiple))
        buckets.setdefault(key, []).append(row)
    return dict(sorted(buckets.items()))


def shard_name(bucket: tuple[int, int, int], index: int) -> str:
    t, h, w = bucket
    return f"t{t}_{h}x{w}_{index:05d}.safetensors"


def _load(row: dict, bucket: tuple[int, int, int], stride: int) -> torch.Tensor:
    count, height, width = bucket
    frames, _ = read_video(row["path"], max_frames=count * stride)
    frames = frames[::stride][:count]
    if len(frames) < count:
        raise KinetoscopeError(f"{row['path']}: has {len(frames)} frames, its row says enough for {count}")
    return resize_crop(frames, height, width)


@torch.no_grad()
def cache_clip_latents(
    rows: Sequence[dict[str, str]], vae, out_dir: str | Path, config: ClipLatentsConfig, *, progress: bool = True
) -> list[Path]:
    """Encode the clips of ``rows`` (``path`` absolute) into ``out_dir``; returns every shard's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vae_id = vae_fingerprint(vae)
    device = next(vae.parameters()).device
    todo, paths = [], []
    for bucket, members in plan_buckets(rows, config, vae).items():
        for s, start in enumerate(range(0, len(members), config.shard_size)):
            chunk = members[start : start + config.shard_size]
            path = out_dir / shard_name(bucket, s)
            paths.append(path)
            if path.exists():
                kept = read_shard(path, vae_id)
                if [r.get("path") for r in kept.records] != [r["path"] for r in chunk]:
                    raise KinetoscopeError(f"{path}: holds other clips than this table plans; use a new cache folder")
                continue
            todo.append((bucket, path, chunk))
    with tqdm(total=sum(len(c) for _, _, c in todo), desc="cache latents", unit="clip", disable=not progress) as bar:
        for bucket, path, chunk in todo:
            latents = []
            for start in range(0, len(chunk), config.batch_size):
                batch = torch.stack([_load(row, bucket, config.stride) for row in chunk[start : start + config.batch_size]])
                latents.append(vae.normalize(vae.encode(batch.to(device)).mode()).cpu())          # b c t h w
                bar.update(len(batch))
            records = [{**row, "text": row.get("text") or ""} for row in chunk]
            write_shard(path, torch.cat(latents), records, vae_id)
    return paths
