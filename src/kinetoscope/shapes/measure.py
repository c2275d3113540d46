"""Still-image attributes of one tracked object: shape, size and how steady its area is.

Each function takes the frames it may use (the caller leaves out frames where another object
overlaps) and returns plain numbers; ``classify_size`` turns a ratio into the spec's word.
Motion lives in ``motion``.
"""

from __future__ import annotations

import math

import numpy as np

from kinetoscope.shapes import spec

# Fraction of its bounding box each shape fills, and its centroid's depth in the box (a
# triangle's centroid sits two thirds of the way down from its apex): with the blend-weighted
# area and centroid they give the box's true side and centre to a fraction of a pixel.
SHAPE_GEOMETRY: dict[str, tuple[float, float]] = {
    "circle": (math.pi / 4, 0.5),
    "square": (1.0, 0.5),
    "triangle": (0.5, 2 / 3),
}
# Corner fill per shape: top-left, top-right, bottom-left, bottom-right. A corner patch 15% of
# the side misses a disk entirely (the disk leaves 14.6% of the diagonal free) and is three
# quarters full at a triangle's base.
_CORNERS = {"circle": (0, 0, 0, 0), "square": (1, 1, 1, 1), "triangle": (0, 0, 0.75, 0.75)}
_CORNER_FRACTION = 0.15
# Sizes are told apart at the midpoint of their box sides (spec "Size": 0.20 and 0.35).
SIZE_THRESHOLD = (spec.SIZES["small"] + spec.SIZES["large"]) / 2
# Largest (max - min) / median of an object's area across frames that still counts as steady.
AREA_TOLERANCE = 0.25


def shape_scores(masks: np.ndarray, boxes: np.ndarray, frames: np.ndarray) -> dict[str, float]:
    """Mean mismatch (0 is perfect) of the object with each shape over ``frames``.

    Per frame: the widths of the rows of the mask inside its box, as fractions of the box width,
    against each shape's profile (square: constant; circle: 2 sqrt(y (1 - y)); triangle: growing
    linearly from the apex), plus how full the box's four corners are against each shape's.
    """
    totals = np.zeros(len(_CORNERS))
    corner_templates = np.array(list(_CORNERS.values()), dtype=np.float64)  # shape corner
    for t in frames:
        x0, y0, x1, y1 = (int(v) for v in boxes[t])
        crop = masks[t, y0:y1, x0:x1]
        height, width = crop.shape
        widths = crop.sum(axis=1) / width
        depth = (np.arange(height) + 0.5) / height
        profiles = np.stack([2 * np.sqrt(depth * (1 - depth)), np.ones(height), depth])  # shape row
        c = max(1, round(_CORNER_FRACTION * min(height, width)))
        patches = (crop[:c, :c], crop[:c, -c:], crop[-c:, :c], crop[-c:, -c:])
        corners = np.array([p.sum() for p in patches]) / (c * c)
        totals += np.abs(widths - profiles).mean(axis=1) + np.abs(corners - corner_templates).mean(axis=1)
    return {shape: float(total) / max(len(frames), 1) for shape, total in zip(_CORNERS, totals)}


def size_ratio(boxes: np.ndarray, frames: np.ndarray, height: int, width: int) -> float:
    """Median bounding-box side (the longer of its two) over ``frames``, in units of min(H, W)."""
    sides = np.maximum(boxes[frames, 2] - boxes[frames, 0], boxes[frames, 3] - boxes[frames, 1])
    return float(np.median(sides)) / min(height, width)


def classify_size(ratio: float) -> str:
    return "small" if ratio < SIZE_THRESHOLD else "large"


def area_variation(areas: np.ndarray, frames: np.ndarray) -> float:
    """(max - min) / median of the blend-weighted area over ``frames``; 0 for one frame."""
    values = areas[frames]
    if len(values) < 2:
        return 0.0
    return float((values.max() - values.min()) / max(np.median(values), 1e-6))
