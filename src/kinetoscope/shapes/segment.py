"""Colour segmentation of Shapes World clips: background, per-pixel palette labels, components.

Every pixel is modelled as a blend ``background + alpha * (colour - background)`` of the
frame's background with one palette colour, which is exactly what an anti-aliased edge is.
A pixel belongs to the colour whose blend line passes nearest to it, and counts as
foreground when its blend weight is at least one half: the shape's true edge, so that
thresholded masks keep the drawn area. Blend weights also give sub-pixel areas and
centroids, which is what makes size and motion measurable on a 32-pixel canvas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kinetoscope.shapes import spec

COLOR_NAMES = tuple(spec.COLORS)
PALETTE = np.array([spec.COLORS[name] for name in COLOR_NAMES], dtype=np.float32)
_BACKGROUND_NAMES = tuple(spec.BACKGROUNDS)
_BACKGROUND_RGB = np.array([spec.BACKGROUNDS[name] for name in _BACKGROUND_NAMES], dtype=np.float32)
# Pixels labelled per chunk: bounds the "n k c" temporaries to ~30 MB whatever the clip.
_CHUNK_PIXELS = 1 << 18
NO_COLOR = -1


@dataclass(frozen=True)
class Segmentation:
    """A clip split into background and palette-coloured foreground.

    ``delta`` is float32 ``"t h w c"``, each pixel minus its frame's background colour
    ``frame_backgrounds`` ``"t c"``; ``labels`` is int8 ``"t h w"``, an index into
    ``COLOR_NAMES`` for foreground pixels and ``NO_COLOR`` elsewhere.
    """

    background: str
    background_rgb: np.ndarray
    frame_backgrounds: np.ndarray
    delta: np.ndarray
    labels: np.ndarray

    @property
    def num_frames(self) -> int:
        return self.labels.shape[0]

    @property
    def height(self) -> int:
        return self.labels.shape[1]

    @property
    def width(self) -> int:
        return self.labels.shape[2]

    def alpha(self, color: int) -> np.ndarray:
        """Blend weight of palette colour ``color`` at every pixel, float32 ``"t h w"`` in [0, 1]."""
        direction = PALETTE[color] - self.frame_backgrounds  # t c
        norm2 = np.maximum((direction**2).sum(-1), 1.0)
        dot = np.einsum("thwc,tc->thw", self.delta, direction)
        return np.clip(dot / norm2[:, None, None], 0.0, 1.0)


def as_rgb_frames(frames: np.ndarray) -> np.ndarray:
    """Any ``"t h w c"`` array (uint8, or float in [0, 1] or [0, 255]; c = 1, 3 or 4) as float32 RGB 0..255."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"frames must be 't h w c', got shape {frames.shape}")
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    elif frames.shape[-1] == 4:
        frames = frames[..., :3]
    elif frames.shape[-1] != 3:
        raise ValueError(f"frames must have 1, 3 or 4 channels, got {frames.shape[-1]}")
    out = np.nan_to_num(frames.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
    if not np.issubdtype(frames.dtype, np.integer) and out.size and out.max() <= 1.0:
        out = out * 255.0
    return np.clip(out, 0.0, 255.0)


def segment(frames: np.ndarray) -> Segmentation:
    """Segment ``frames`` ``"t h w c"``; the background is each frame's median colour.

    Objects cover at most a quarter of a frame, so the median is the background even with two
    large objects, and a per-frame median follows a generated clip's drifting background.
    """
    rgb = as_rgb_frames(frames)
    num_frames, height, width = rgb.shape[:3]
    if rgb.size == 0:
        empty = np.zeros((num_frames, height, width), dtype=np.int8)
        backgrounds = np.zeros((num_frames, 3), dtype=np.float32)
        return Segmentation("black", np.zeros(3, np.float32), backgrounds, rgb, empty - 1)
    frame_backgrounds = np.median(rgb.reshape(num_frames, -1, 3), axis=1).astype(np.float32)
    background_rgb = np.median(frame_backgrounds, axis=0)
    nearest = int(np.argmin(((_BACKGROUND_RGB - background_rgb) ** 2).sum(-1)))
    delta = rgb - frame_backgrounds[:, None, None, :]
    labels = np.full((num_frames, height, width), NO_COLOR, dtype=np.int8)
    directions = PALETTE[None] - frame_backgrounds[:, None, :]  # t k c
    norm2 = np.maximum((directions**2).sum(-1), 1.0)  # t k
    # A blend weight of one half needs |delta| >= |direction| / 2 (Cauchy-Schwarz), so pixels
    # nearer their background than that are background for every colour: most of a frame.
    reach = 0.25 * norm2.min(axis=1)
    candidates = np.nonzero((delta**2).sum(-1) >= reach[:, None, None])
    for start in range(0, len(candidates[0]), _CHUNK_PIXELS):
        chunk = tuple(index[start : start + _CHUNK_PIXELS] for index in candidates)
        frame = chunk[0]
        labels[chunk] = _label_pixels(delta[chunk], directions[frame], norm2[frame])
    return Segmentation(_BACKGROUND_NAMES[nearest], background_rgb, frame_backgrounds, delta, labels)


def _label_pixels(delta: np.ndarray, directions: np.ndarray, norm2: np.ndarray) -> np.ndarray:
    """Nearest blend line per pixel ``"n c"`` (its frame's ``directions`` ``"n k c"``, squared
    lengths ``"n k"``); ``NO_COLOR`` where the blend weight is under one half."""
    dot = (delta[:, None, :] * directions).sum(-1)
    alpha = np.clip(dot / norm2, 0.0, 1.0)
    length2 = (delta**2).sum(-1, keepdims=True)
    residual = length2 - 2.0 * alpha * dot + alpha**2 * norm2
    nearest = np.argmin(residual, axis=-1)
    weight = np.take_along_axis(alpha, nearest[:, None], axis=-1)[:, 0]
    return np.where(weight >= 0.5, nearest, NO_COLOR).astype(np.int8)


def shift_reduce(mask: np.ndarray, op, fill) -> np.ndarray:
    """Apply ``op`` (np.minimum or np.maximum) over each pixel's 3x3 neighbourhood of ``"b h w"``."""
    height, width = mask.shape[1:]
    padded = np.pad(mask, ((0, 0), (1, 1), (1, 1)), constant_values=fill)
    out = padded[:, 1 : height + 1, 1 : width + 1].copy()
    for dy in range(3):
        for dx in range(3):
            if dy != 1 or dx != 1:
                out = op(out, padded[:, dy : dy + height, dx : dx + width])
    return out


def dilate(mask: np.ndarray) -> np.ndarray:
    """3x3 dilation of a boolean ``"b h w"`` mask."""
    return shift_reduce(mask, np.maximum, False)


def opening(mask: np.ndarray) -> np.ndarray:
    """3x3 opening of a boolean ``"b h w"`` mask: removes lines and specks under 3 pixels thick."""
    return dilate(shift_reduce(mask, np.minimum, True))


def label_components(mask: np.ndarray) -> np.ndarray:
    """8-connected components of a boolean ``"b h w"`` mask, each image on its own.

    Returns int64 ``"b h w"``: 0 off the mask, otherwise 1 + the flat index of the component's
    first pixel. Minimum-label propagation with pointer jumping converges in a few passes, so
    this stays numpy-only and fast without scipy.
    """
    size = mask.size
    index = np.arange(1, size + 1, dtype=np.int64).reshape(mask.shape)
    labels = np.where(mask, index, 0)
    sentinel = size + 1
    while True:
        spread = shift_reduce(np.where(mask, labels, sentinel), np.minimum, sentinel)
        updated = np.where(mask, spread, 0)
        flat = updated.reshape(-1)
        while True:
            # A label names a pixel of the same component; jumping to that pixel's label shortcuts chains.
            jumped = np.where(flat > 0, flat[np.maximum(flat - 1, 0)], 0)
            if np.array_equal(jumped, flat):
                break
            flat = jumped
        updated = flat.reshape(mask.shape)
        if np.array_equal(updated, labels):
            return labels
        labels = updated
