"""A single 256-colour palette for a whole clip, for GIF output.

Shapes World clips have a handful of flat colours plus anti-aliased edges; the flat colours
must survive exactly (the analyzer checks colours), so the most frequent colours enter the
palette verbatim and only the rare ones are approximated.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

PALETTE_SIZE = 256
# A colour covering at least this fraction of all pixels is kept exactly, whatever else the
# clip holds; 64 such colours at most, so the rest of the palette still spans the leftovers.
_DOMINANT_FRACTION = 1e-3
_MAX_DOMINANT = 64
_NEAREST_CHUNK = 4096


def _pack(rgb: np.ndarray) -> np.ndarray:
    """uint8 "... 3" -> uint32 keys r<<16 | g<<8 | b (one comparable number per colour)."""
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _unpack(keys: np.ndarray) -> np.ndarray:
    """uint32 keys -> uint8 "n 3" colours."""
    return np.stack([(keys >> 16) & 255, (keys >> 8) & 255, keys & 255], axis=-1).astype(np.uint8)


def _median_cut(colours: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """Up to ``n`` representative colours of the weighted set ``colours`` ("k 3"), by Pillow."""
    # Pillow quantizes images, not weighted sets: repeat colours by a capped weight so that
    # frequent colours pull the cut without building a multi-megapixel image.
    weights = np.clip(np.ceil(counts / counts.max() * 64), 1, 64).astype(np.int64)
    pixels = np.repeat(colours, weights, axis=0)
    quantized = Image.fromarray(pixels[None]).quantize(colors=n, method=Image.Quantize.MEDIANCUT)
    used = np.unique(np.asarray(quantized))
    flat = np.asarray(quantized.getpalette()[: 3 * n], dtype=np.uint8).reshape(-1, 3)
    return flat[used[used < len(flat)]]


def _nearest(colours: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index into ``palette`` ("p 3") of the closest entry to each of ``colours`` ("k 3")."""
    palette = palette.astype(np.int32)
    out = np.empty(len(colours), dtype=np.uint8)
    for start in range(0, len(colours), _NEAREST_CHUNK):
        chunk = colours[start : start + _NEAREST_CHUNK].astype(np.int32)
        distance = ((chunk[:, None, :] - palette[None, :, :]) ** 2).sum(-1)
        out[start : start + _NEAREST_CHUNK] = distance.argmin(1)
    return out


def build_palette(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map uint8 RGB frames "t h w 3" to palette indices "t h w" and a "256 3" uint8 palette.

    Exact (zero error) when the clip has at most 256 distinct colours; otherwise every colour
    covering at least 0.1% of the pixels stays exact and the rest map to the nearest entry.
    """
    keys, inverse, counts = np.unique(_pack(frames).ravel(), return_inverse=True, return_counts=True)
    colours = _unpack(keys)
    palette = np.zeros((PALETTE_SIZE, 3), dtype=np.uint8)
    if len(keys) <= PALETTE_SIZE:
        palette[: len(keys)] = colours
        lookup = np.arange(len(keys), dtype=np.uint8)
    else:
        most_common = np.argsort(counts)[::-1][:_MAX_DOMINANT]
        dominant = most_common[counts[most_common] >= _DOMINANT_FRACTION * inverse.size]
        rest = np.setdiff1d(np.arange(len(keys)), dominant)
        extra = _median_cut(colours[rest], counts[rest], PALETTE_SIZE - len(dominant))
        chosen = np.concatenate([colours[dominant], extra])[:PALETTE_SIZE]
        palette[: len(chosen)] = chosen
        lookup = _nearest(colours, palette[: len(chosen)])
    return lookup[inverse].reshape(frames.shape[:-1]), palette
