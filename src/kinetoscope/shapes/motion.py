"""Motion of one tracked object: box centres per frame, velocity before the first bounce, speed.

The spec's renderer reverses a velocity component whenever the box would cross a wall, so the
box moves by exactly its speed every frame and each axis is a straight line up to its first
bounce. Centres come from blend-weighted centroids where the object is alone (sub-pixel), and
from box edges where two overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kinetoscope.shapes import spec
from kinetoscope.shapes.track import Track, overlapping

# Below half the slow speed an object counts as still (spec speeds are 0, then 0.02 and up).
STILL_THRESHOLD = spec.SPEEDS["slowly"] / 2
# Between two bounces on one axis a box crosses at least 1 - 0.35 of the frame, at most 0.05
# per frame (faster than the spec's quick speed): 13 steps or more, so 12 hold one bounce at most.
BOUNCE_FREE_STEPS = 12
# Pixels a box measured from edges may sit off the true one (blend threshold, quantisation).
WALL_SLACK = 1.0
# Steps between sub-pixel centroids needed before the mean speed leaves out the other steps.
MIN_PRECISE_STEPS = 3


@dataclass(frozen=True)
class Motion:
    """``velocity`` (dx, dy) in pixels per frame before each axis's first bounce and ``speed``
    the mean distance per frame in units of min(H, W)."""

    velocity: tuple[float, float]
    speed: float


def box_centers(
    track: Track,
    other_boxes: list[np.ndarray],
    clear: np.ndarray,
    on_top: bool,
    side: float,
    depth: float,
    extent: tuple[float, float],
) -> np.ndarray:
    """Box centres ``"t 2"`` (x, y), NaN where unknown.

    ``other_boxes`` are the other objects' boxes ``"t 4"``. In ``clear`` frames the centre is
    the centroid moved from ``depth`` (the centroid's depth in the box, as a fraction of
    ``side``) to the box's middle; an object drawn ``on_top`` keeps its whole outline, so the
    middle of its blob's box serves where it overlaps. Underneath, an axis is read from a blob
    edge that no overlapping box reaches past (nothing beyond it can be hidden), with
    ``extent`` (width, height), the object's usual box size.
    """
    centers = np.full(track.centroids.shape, np.nan)
    centers[clear] = track.centroids[clear] + np.array([0.0, (0.5 - depth) * side])
    for t in np.flatnonzero(track.visible & ~clear):
        box = track.boxes[t]
        if on_top:
            centers[t] = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            continue
        hidden = np.zeros(4, dtype=bool)  # beyond x0, y0, x1, y1
        for other in other_boxes:
            if overlapping(box[None], other[t][None])[0]:
                hidden |= np.concatenate([other[t, :2] < box[:2] - 1, other[t, 2:] > box[2:] + 1])
        centers[t, 0] = _center_from_edges(box[0], box[2], (hidden[0], hidden[2]), extent[0])
        centers[t, 1] = _center_from_edges(box[1], box[3], (hidden[1], hidden[3]), extent[1])
    return centers


def _center_from_edges(low: float, high: float, hidden: tuple[bool, bool], extent: float) -> float:
    if not hidden[0] and not hidden[1]:
        return (low + high) / 2
    if not hidden[0]:
        return low + extent / 2
    if not hidden[1]:
        return high - extent / 2
    return math.nan


def measure_motion(centers: np.ndarray, precise: np.ndarray, side: float, height: int, width: int) -> Motion | None:
    """Motion from box centres ``"t 2"`` (NaN where unknown) of a box of ``side`` pixels;
    None unless some axis is known in two frames or more.

    The mean speed comes from steps between ``precise`` frames (sub-pixel centroids) when
    there are a few: jitter of whole-pixel edges would add to every step's length.
    """
    scale = min(height, width)
    known = ~np.isnan(centers)
    if known.all(axis=1).sum() < 2 or known.any(axis=1).sum() < 2:
        return None
    both = np.flatnonzero(known.all(axis=1))
    gaps = np.diff(both)
    steps = np.linalg.norm(np.diff(centers[both], axis=0), axis=1) / gaps
    adjacent = gaps == 1
    clean = adjacent & precise[both[:-1]] & precise[both[1:]]
    chosen = clean if clean.sum() >= MIN_PRECISE_STEPS else adjacent if adjacent.any() else np.ones_like(adjacent)
    speed = float(steps[chosen].mean()) / scale
    velocity = []
    for axis, limit in ((0, width), (1, height)):
        frames = np.flatnonzero(known[:, axis])
        if len(frames) < 2:
            velocity.append(0.0)
            continue
        walls = (side / 2, limit - side / 2)
        velocity.append(_velocity_before_bounce(frames.astype(np.float64), centers[frames, axis], walls))
    return Motion((velocity[0], velocity[1]), speed)


def _velocity_before_bounce(times: np.ndarray, positions: np.ndarray, walls: tuple[float, float]) -> float:
    """Velocity of one axis before its first bounce, fitted over the first ``BOUNCE_FREE_STEPS``.

    Moving at a constant speed and reversing at a wall, the positions up to and just after the
    first bounce form a tent ``a + v * min(t, 2b - t)`` (a line when ``b`` lies past the
    window) whose peak lies within a step of ``walls`` (the lowest and highest centre the box
    can take). Fitting every such bounce time ``b`` on a half-frame grid and keeping the best
    uses the frames on both sides of the bounce, so whole-pixel jitter and unseen frames (a
    bounce behind another object) do not decide where the first bounce was.
    """
    window = times <= times[0] + BOUNCE_FREE_STEPS
    if window.sum() >= 2:
        times, positions = times[window], positions[window]
    t = times - times[0]
    # A bounce before the second frame seen leaves no velocity before it to measure: the clip
    # shows only the motion after it, so the first tent peaks at the second frame at the earliest.
    bounces = np.concatenate([[np.inf], np.arange(t[1], t[-1], 0.5)])
    shapes = np.minimum(t[None], 2 * bounces[:, None] - t[None])  # model frame
    centered = shapes - shapes.mean(axis=1, keepdims=True)
    spread = np.maximum((centered**2).sum(axis=1), 1e-12)
    slopes = (centered * (positions - positions.mean())).sum(axis=1) / spread
    residual = ((positions - positions.mean()) ** 2).sum() - slopes**2 * spread
    peaks = positions.mean() + slopes * (np.minimum(bounces, t[-1]) - shapes.mean(axis=1))
    reach = np.abs(slopes) + WALL_SLACK
    at_wall = np.where(slopes > 0, np.abs(walls[1] - peaks) <= reach, np.abs(peaks - walls[0]) <= reach)
    residual = np.where(at_wall | np.isinf(bounces), residual, np.inf)
    # On a tie (a still object fits every tent) the plain line, first, wins.
    return float(slopes[np.argmin(np.round(residual, 9))])


def classify_direction(velocity: tuple[float, float], height: int, width: int) -> str:
    """The spec direction nearest to ``velocity`` (pixels per frame, +y down), or still."""
    vx, vy = velocity
    if math.hypot(vx, vy) / min(height, width) < STILL_THRESHOLD:
        return "still"
    angle = math.atan2(-vy, vx)
    moving = {name: math.atan2(-uy, ux) for name, (ux, uy) in spec.DIRECTIONS.items() if name != "still"}
    return min(moving, key=lambda name: abs(math.remainder(angle - moving[name], math.tau)))


def classify_speed(speed: float) -> str:
    return "slowly" if speed < spec.SPEED_THRESHOLD else "quickly"
