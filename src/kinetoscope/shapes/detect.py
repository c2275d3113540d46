"""What a clip shows, independent of any prompt: background and objects with their attributes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kinetoscope.shapes import measure
from kinetoscope.shapes.motion import box_centers, classify_direction, classify_speed, measure_motion
from kinetoscope.shapes.segment import COLOR_NAMES, PALETTE, segment
from kinetoscope.shapes.track import Track, clear_frames, find_tracks, on_top, presence

# Without a frame clear of other objects, shape and size come from frames showing at least
# this fraction of the object's largest visible area.
LEAST_HIDDEN = 0.9


@dataclass(frozen=True)
class DetectedObject:
    """One object found in a clip, with every attribute the spec measures.

    ``direction``/``speed`` are None without two frames to compare (a one-frame clip is an
    image), ``area_variation`` when another object overlaps it in every frame. ``track`` holds
    the per-frame masks ``"t h w"``, boxes ``"t 4"``, centroids ``"t 2"`` and areas; ``clear``
    marks the frames no other object overlaps (shape, size and area use only those when there
    are any); ``centers`` ``"t 2"`` are the box centres motion is read from, NaN where unknown.
    """

    color: str
    shape: str
    size: str
    direction: str | None
    speed: str | None
    presence: float
    size_ratio: float
    speed_value: float | None
    area_variation: float | None
    velocity: tuple[float, float] | None
    shape_scores: dict[str, float]
    track: Track
    clear: np.ndarray
    centers: np.ndarray

    @property
    def masks(self) -> np.ndarray:
        return self.track.masks

    @property
    def boxes(self) -> np.ndarray:
        return self.track.boxes

    @property
    def centroids(self) -> np.ndarray:
        return self.track.centroids

    def summary(self) -> dict:
        """The measured attributes as plain JSON-ready values."""
        return {
            "color": self.color,
            "shape": self.shape,
            "size": self.size,
            "direction": self.direction,
            "speed": self.speed,
            "presence": round(self.presence, 4),
            "size_ratio": _rounded(self.size_ratio),
            "speed_value": _rounded(self.speed_value),
            "area_variation": _rounded(self.area_variation),
        }


@dataclass(frozen=True)
class SceneDetection:
    """A clip's background (None for a clip without pixels) and its objects, largest first."""

    background: str | None
    objects: tuple[DetectedObject, ...]
    num_frames: int
    height: int
    width: int


def detect_scene(frames: np.ndarray) -> SceneDetection:
    """Segment ``frames`` ``"t h w c"`` and measure every object in them."""
    seg = segment(frames)
    num_frames, height, width = seg.labels.shape
    tracks = find_tracks(seg)
    objects = tuple(_describe(tracks, i, height, width) for i in range(len(tracks)))
    background = seg.background if seg.labels.size else None
    return SceneDetection(background, objects, num_frames, height, width)


def detect_objects(frames: np.ndarray) -> list[DetectedObject]:
    """Every object in ``frames`` ``"t h w c"`` with its colour, shape, size, motion and presence."""
    return list(detect_scene(frames).objects)


def _describe(tracks: list[Track], index: int, height: int, width: int) -> DetectedObject:
    track = tracks[index]
    clear = clear_frames(tracks, index)
    # Overlapped frames distort shape and size: without a clear frame, use the least hidden ones.
    if clear.any():
        usable = np.flatnonzero(clear)
    else:
        areas = np.where(track.visible, track.areas, 0.0)
        usable = np.flatnonzero(areas >= LEAST_HIDDEN * areas.max())
    color = COLOR_NAMES[int(np.argmin(((PALETTE - track.rgb) ** 2).sum(-1)))]
    scores = measure.shape_scores(track.masks, track.boxes, usable)
    shape = min(scores, key=scores.get)
    ratio = measure.size_ratio(track.boxes, usable, height, width)
    # Area steadiness is only judged where nothing can hide part of the object.
    variation = measure.area_variation(track.areas, np.flatnonzero(clear)) if clear.any() else None
    fill, depth = measure.SHAPE_GEOMETRY[shape]
    side = float(np.sqrt(np.median(track.areas[usable]) / fill))
    sizes = track.boxes[usable, 2:] - track.boxes[usable, :2]
    extent = np.median(sizes, axis=0) if clear.any() else sizes.max(axis=0)
    other_boxes = [other.boxes for j, other in enumerate(tracks) if j != index]
    extent_xy = (float(extent[0]), float(extent[1]))
    centers = box_centers(track, other_boxes, clear, on_top(tracks, index), side, depth, extent_xy)
    motion = measure_motion(centers, clear, side, height, width)
    return DetectedObject(
        color=color,
        shape=shape,
        size=measure.classify_size(ratio),
        direction=classify_direction(motion.velocity, height, width) if motion else None,
        speed=classify_speed(motion.speed) if motion else None,
        presence=presence(tracks, index),
        size_ratio=ratio,
        speed_value=motion.speed if motion else None,
        area_variation=variation,
        velocity=motion.velocity if motion else None,
        shape_scores=scores,
        track=track,
        clear=clear,
        centers=centers,
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
