"""Objects as tracks through a segmented clip: one palette colour, one blob per frame.

Objects never share a colour (spec "Objects"), so a colour is an object's identity: no
motion model is needed to follow it, and two objects passing through each other cannot swap.
A blob only counts when something 3 pixels thick is left after an opening, so that anti-aliased
seams where one object's edge blends over another (red over yellow reads as orange) and
compression specks do not become objects. A second blob of one colour in most frames is a
second object (a generated clip may repeat a colour even though the spec never does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kinetoscope.shapes import spec
from kinetoscope.shapes.segment import (
    COLOR_NAMES,
    Segmentation,
    dilate,
    label_components,
    opening,
    shift_reduce,
)

# A blob's opened area must reach this fraction of the smallest object (a small triangle).
MIN_BLOB_FRACTION = 0.25
# A colour is an object when a blob shows in at least this fraction of frames: a few flickering
# frames of a generated clip are noise, an object present in fewer frames fails presence anyway.
MIN_TRACK_FRACTION = 0.25
# A repeated colour counts as a second object only in most frames: occlusion can split one object.
MIN_SECOND_BLOB_FRACTION = 0.5
# Boxes closer than this (pixels) count as overlapping: a sliver left of an occluded object
# touches, not crosses, the occluder's box.
OVERLAP_MARGIN = 2.0
# Fastest an object moves per frame, in units of min(H, W): the quick speed with room to spare.
MAX_STEP = 0.05


@dataclass(frozen=True)
class Track:
    """One object through the clip.

    ``masks`` is bool ``"t h w"`` (its blob per frame); ``boxes`` ``"t 4"`` are the blob's
    pixel-edge bounds (x0, y0, x1, y1); ``centroids`` ``"t 2"`` (x, y) and ``areas`` ``"t"``
    are blend-weighted, so sub-pixel; all NaN where ``visible`` is False. ``rgb`` is the median
    colour of its interior pixels.
    """

    color: str
    visible: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray
    centroids: np.ndarray
    areas: np.ndarray
    rgb: np.ndarray


def min_blob_area(height: int, width: int) -> float:
    side = spec.SIZES["small"] * min(height, width)
    return max(2.0, MIN_BLOB_FRACTION * 0.5 * side * side)


def find_tracks(seg: Segmentation) -> list[Track]:
    """Every object in ``seg``, as tracks, largest first."""
    num_frames = seg.num_frames
    if num_frames == 0 or seg.height == 0 or seg.width == 0:
        return []
    needed = max(1, math.ceil(MIN_TRACK_FRACTION * num_frames))
    blob_masks: list[tuple[int, np.ndarray]] = []
    min_area = min_blob_area(seg.height, seg.width)
    for color in np.unique(seg.labels[seg.labels >= 0]):
        mask = seg.labels == color
        opened = opening(mask)
        if (opened.sum(axis=(1, 2)) >= min_area).sum() < needed:
            continue
        blobs = _significant_blobs(mask, opened, min_area)
        counts = np.array([len(b) for b in blobs])
        if (counts >= 1).sum() < needed:
            continue
        blob_masks.append((int(color), _blob_track(blobs, 0, seg.labels.shape)))
        if (counts >= 2).sum() >= max(needed, math.ceil(MIN_SECOND_BLOB_FRACTION * num_frames)):
            blob_masks.append((int(color), _blob_track(blobs, 1, seg.labels.shape)))
    everything = np.zeros(seg.labels.shape, dtype=bool)
    for _, masks in blob_masks:
        everything |= masks
    tracks = []
    for color, masks in blob_masks:
        # Another object's colour counts as that object even where its blob is too small to
        # see (nearly hidden): its colours project strongly onto this one's blend line.
        other_colors = [c for c, _ in blob_masks if c != color]
        others = (everything & ~masks) | np.isin(seg.labels, other_colors)
        tracks.append(_measure(seg, color, masks, others))
    return sorted(tracks, key=lambda tr: -np.nansum(tr.areas))


def _significant_blobs(mask: np.ndarray, opened: np.ndarray, min_area: float) -> list[list[np.ndarray]]:
    """Per frame, the full-frame masks of the blobs of ``mask`` with at least ``min_area`` pixels
    in its opening ``opened``, largest first."""
    rows, cols = np.flatnonzero(mask.any(axis=(0, 2))), np.flatnonzero(mask.any(axis=(0, 1)))
    # Components are labelled inside the colour's bounding box over the clip: most frames are background.
    window = (slice(None), slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    components = label_components(mask[window])
    kept, opened_counts = np.unique(components[opened[window]], return_counts=True)
    kept = kept[(kept > 0) & (opened_counts >= min_area)]
    frame_size = components.shape[1] * components.shape[2]
    blobs: list[list[np.ndarray]] = [[] for _ in range(mask.shape[0])]
    for label in kept:
        frame = int((label - 1) // frame_size)
        blob = np.zeros(mask.shape[1:], dtype=bool)
        blob[window[1:]] = components[frame] == label
        blobs[frame].append(blob)
    for frame_blobs in blobs:
        frame_blobs.sort(key=lambda b: -int(b.sum()))
    return blobs


def _blob_track(blobs: list[list[np.ndarray]], rank: int, shape: tuple[int, ...]) -> np.ndarray:
    """Masks ``"t h w"`` of one object: the largest blob per frame, or for ``rank`` 1 the other
    of the two largest, keeping each frame's pick nearest the previous one."""
    masks = np.zeros(shape, dtype=bool)
    previous = None
    for frame, frame_blobs in enumerate(blobs):
        if len(frame_blobs) <= rank:
            continue
        pick = frame_blobs[rank]
        if rank == 1 and previous is not None:
            pick = min(frame_blobs[:2], key=lambda b: np.hypot(*(_center(b) - previous)))
        masks[frame] = pick
        previous = _center(pick)
    return masks


def _center(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return np.array([cols.mean(), rows.mean()])


def _measure(seg: Segmentation, color: int, masks: np.ndarray, others: np.ndarray) -> Track:
    """Boxes from the blob; area and centroid from blend weights over the blob and its rim,
    leaving out other objects' pixels (their colours can project strongly onto this one's)."""
    visible = masks.any(axis=(1, 2))
    region = dilate(masks) & ~others
    weight = np.where(region, seg.alpha(color), 0.0)
    areas = weight.sum(axis=(1, 2))
    safe = np.maximum(areas, 1e-6)
    xs = np.arange(seg.width) + 0.5
    ys = np.arange(seg.height) + 0.5
    centroids = np.stack([(weight.sum(1) * xs).sum(1) / safe, (weight.sum(2) * ys).sum(1) / safe], axis=1)
    boxes = np.full((seg.num_frames, 4), np.nan)
    any_col, any_row = masks.any(axis=1), masks.any(axis=2)
    for t in np.flatnonzero(visible):
        cols, rows = np.flatnonzero(any_col[t]), np.flatnonzero(any_row[t])
        boxes[t] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    centroids[~visible] = np.nan
    areas = np.where(visible, areas, np.nan)
    interior = shift_reduce(masks, np.minimum, True) & masks
    pixels = interior if interior.any() else masks
    rgb = np.median(seg.delta[pixels] + _frame_backgrounds(seg, pixels), axis=0)
    return Track(COLOR_NAMES[color], visible, masks, boxes, centroids, areas, rgb)


def _frame_backgrounds(seg: Segmentation, pixels: np.ndarray) -> np.ndarray:
    frame_of_pixel = np.nonzero(pixels)[0]
    return seg.frame_backgrounds[frame_of_pixel]


def overlapping(a: np.ndarray, b: np.ndarray, margin: float = OVERLAP_MARGIN) -> np.ndarray:
    """Per frame, whether boxes ``"t 4"`` ``a`` and ``b`` overlap (False where either is NaN)."""
    with np.errstate(invalid="ignore"):
        return (
            (a[:, 0] < b[:, 2] + margin)
            & (b[:, 0] < a[:, 2] + margin)
            & (a[:, 1] < b[:, 3] + margin)
            & (b[:, 1] < a[:, 3] + margin)
        )


def clear_frames(tracks: list[Track], index: int) -> np.ndarray:
    """Frames where track ``index`` is visible and no other object's box overlaps its box."""
    track = tracks[index]
    clear = track.visible.copy()
    for j, other in enumerate(tracks):
        if j != index:
            clear &= ~overlapping(track.boxes, other.boxes)
    return clear


def on_top(tracks: list[Track], index: int) -> bool:
    """Whether track ``index`` is drawn over every object it overlaps (the spec's draw order).

    Where two boxes overlap, the object underneath loses area and the one on top keeps it:
    compare each one's median area there with its area elsewhere.
    """
    track = tracks[index]
    for j, other in enumerate(tracks):
        both = overlapping(track.boxes, other.boxes)
        if j != index and both.any() and _kept_area(track, both) < _kept_area(other, both):
            return False
    return True


def _kept_area(track: Track, overlap: np.ndarray) -> float:
    alone = track.visible & ~overlap
    reference = np.median(track.areas[alone]) if alone.any() else np.nanmax(track.areas)
    shown = track.areas[overlap & track.visible]
    return float(np.median(shown) / max(reference, 1e-6)) if len(shown) else 0.0


def presence(tracks: list[Track], index: int) -> float:
    """Fraction of frames where track ``index`` is visible or hidden behind another object.

    A frame where the object is missing still counts when another object, seen alongside it
    elsewhere in the clip, overlaps anywhere the object could be: around the nearest frames
    that show it, grown by its full size (the last view may be a sliver) and by the fastest
    spec speed for every frame since. The spec draws the second object over the first. An object
    that turns into another colour is never seen alongside its successor, so it is not excused.
    """
    track = tracks[index]
    if not track.visible.any():
        return 0.0
    present = track.visible.copy()
    seen = np.flatnonzero(track.visible)
    sizes = track.boxes[seen, 2:] - track.boxes[seen, :2]
    reach = MAX_STEP * min(track.masks.shape[1:])
    for j, other in enumerate(tracks):
        if j == index or not (other.visible & track.visible).any():
            continue
        for t in np.flatnonzero(~track.visible & other.visible):
            nearest = seen[np.argmin(np.abs(seen - t))]
            grow = np.tile(sizes.max(axis=0) - sizes[seen == nearest][0], 2) + reach * abs(t - nearest)
            region = track.boxes[nearest] + np.array([-1, -1, 1, 1]) * grow
            if overlapping(region[None], other.boxes[t][None])[0]:
                present[t] = True
    return float(present.mean())
