"""Image quality per frame, summarised per clip: sharpness, exposure, blockiness, black and solid
frames, letterboxing.

All but blockiness are measured on the analysis frames. Blockiness needs the decoded picture
at full size (an 8x8 coding-block grid does not survive scaling), so it is measured on the
luma plane of a frame every ``block_interval`` seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import av
import numpy as np

from kinetoscope.data.curate.probe import Frame

# Luma levels (0-255) below which a pixel is black, for black frames and letterbox bars;
# 32 leaves room for limited-range black (16) after compression noise.
_DARK = 32
# A solid frame: every channel's standard deviation below this (compression noise included).
_SOLID_STD = 4.0
# Exposure: pixels at the ends of the range have lost detail.
_CLIPPED_LOW, _CLIPPED_HIGH = 4, 251


@dataclass
class QualityMeter:
    """Analyser keeping per-frame measures (NaN where not measured)."""

    block_interval: float = 0.5
    stage: str = "quality"
    sharpness: list[float] = field(default_factory=list)
    brightness: list[float] = field(default_factory=list)
    clipped: list[float] = field(default_factory=list)
    black: list[bool] = field(default_factory=list)
    solid: list[bool] = field(default_factory=list)
    letterbox: list[float] = field(default_factory=list)
    blockiness: list[float] = field(default_factory=list)
    _next_block_time: float = -math.inf

    def add(self, frame: Frame) -> None:
        import cv2

        gray = frame.gray
        # Variance of the Laplacian (Pech-Pacheco et al. 2000): high for crisp edges, low for blur.
        # cv2.meanStdDev, not numpy: it is several times faster on these small frames.
        self.sharpness.append(float(cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_32F))[1][0, 0] ** 2))
        self.brightness.append(float(cv2.mean(gray)[0]) / 255.0)
        histogram = np.bincount(gray.reshape(-1), minlength=256) / gray.size
        self.clipped.append(float(histogram[: _CLIPPED_LOW + 1].sum() + histogram[_CLIPPED_HIGH:].sum()))
        # Black: all but 2 % of the pixels dark (a logo or a subtitle does not make a frame black).
        black = bool(histogram[_DARK:].sum() < 0.02)
        self.black.append(black)
        self.solid.append(bool(cv2.meanStdDev(frame.bgr)[1].max() < _SOLID_STD))
        self.letterbox.append(float("nan") if black else letterbox_fraction(gray))
        if frame.time >= self._next_block_time:
            self._next_block_time = frame.time + self.block_interval
            self.blockiness.append(blockiness(luma_plane(frame.source)))
        else:
            self.blockiness.append(float("nan"))


def letterbox_fraction(gray: np.ndarray) -> float:
    """Share of the frame's area in black bars: dark rows at the top and bottom, dark columns
    at the sides (letterbox, pillarbox, or both)."""
    dark_rows = gray.max(1) < _DARK
    dark_cols = gray.max(0) < _DARK
    rows = _edge_run(dark_rows) + _edge_run(dark_rows[::-1])
    cols = _edge_run(dark_cols) + _edge_run(dark_cols[::-1])
    return 1.0 - (1.0 - min(rows / gray.shape[0], 1.0)) * (1.0 - min(cols / gray.shape[1], 1.0))


def _edge_run(flags: np.ndarray) -> int:
    """Length of the run of True at the start of ``flags``."""
    false = np.flatnonzero(~flags)
    return int(false[0]) if false.size else len(flags)


def luma_plane(frame: av.VideoFrame) -> np.ndarray:
    """The frame's luma at coded size, "h w" uint8: the Y plane itself for 8-bit YUV, else converted."""
    if frame.format.name in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12"):
        plane = frame.planes[0]
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        return rows[:, : plane.width]
    return frame.to_ndarray(format="gray")


def blockiness(luma: np.ndarray) -> float:
    """How much stronger luma steps are across 8-pixel block borders than elsewhere, minus 1.

    About 0 for clean video; 0.3 and up shows the block grid of an over-compressed codec
    (a boundary-to-interior gradient ratio in the spirit of Wang, Bovik & Evans 2000).
    """
    x = luma.astype(np.int16)
    ratios = []
    for steps in (np.abs(np.diff(x, axis=1)), np.abs(np.diff(x, axis=0)).T):
        if steps.shape[1] < 16:
            continue
        border = steps[:, 7::8]
        inside = np.delete(steps, np.s_[7::8], axis=1)
        ratios.append((float(border.mean()) + 1.0) / (float(inside.mean()) + 1.0))
    return max(0.0, float(np.mean(ratios)) - 1.0) if ratios else 0.0


def _nanmedian(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else None


def clip_quality(meter: QualityMeter, start: int, end: int) -> dict[str, float | None]:
    """A clip's quality columns: medians over its frames (shares for black and solid frames)."""
    window = slice(start, end)
    return {
        "sharpness": _nanmedian(np.asarray(meter.sharpness[window])),
        "brightness": _nanmedian(np.asarray(meter.brightness[window])),
        "clipped": _nanmedian(np.asarray(meter.clipped[window])),
        "blockiness": _nanmedian(np.asarray(meter.blockiness[window])),
        "black_frames": float(np.mean(meter.black[window])),
        "solid_frames": float(np.mean(meter.solid[window])),
        "letterbox": _nanmedian(np.asarray(meter.letterbox[window])),
    }
