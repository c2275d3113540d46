"""Scene cuts with PySceneDetect's ContentDetector, and clips of bounded length cut from scenes.

The detector is fed the analysis frames of the single decode pass instead of opening the file
again. Its timecodes carry each frame's real timestamp (microseconds), so its minimum scene
length is in seconds even in variable-frame-rate files, and every cut maps back to the exact
index of the first frame of the new scene.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from kinetoscope.data.curate.probe import Frame

_MICROSECOND = Fraction(1, 1_000_000)


class SceneSplitter:
    """Analyser that finds the frames where a new scene starts."""

    stage = "scenes"

    def __init__(self, threshold: float, min_scene_seconds: float) -> None:
        from scenedetect import ContentDetector

        # A float min_scene_len is seconds to PySceneDetect, an int frames.
        self._detector = ContentDetector(threshold=threshold, min_scene_len=float(min_scene_seconds))
        self._index_of: dict[int, int] = {}
        self._cuts: list[int] = []
        self._last = None

    def add(self, frame: Frame) -> None:
        from scenedetect import FrameTimecode
        from scenedetect.common import Timecode

        pts = round(frame.time * 1_000_000)
        self._index_of[pts] = frame.index
        # The rate only serves frame-number estimates, which nothing here uses.
        self._last = FrameTimecode(Timecode(pts=pts, time_base=_MICROSECOND), fps=Fraction(1_000_000))
        self._cuts += [self._index_of[c.pts] for c in self._detector.process_frame(self._last, frame.bgr)]

    def cuts(self) -> list[int]:
        """Indices of the first frame of every scene after the first, in order."""
        if self._last is not None:
            self._cuts += [self._index_of[c.pts] for c in self._detector.post_process(self._last)]
            self._last = None
        return sorted(set(c for c in self._cuts if c > 0))


def scene_ranges(cuts: list[int], num_frames: int) -> list[tuple[int, int]]:
    """Scenes as frame ranges ``[start, end)`` covering ``0 .. num_frames``: no cut, one scene."""
    bounds = [0, *cuts, num_frames]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def cut_clips(
    scene: tuple[int, int], times: np.ndarray, ends: np.ndarray, min_seconds: float, max_seconds: float
) -> list[tuple[int, int]]:
    """Consecutive clips ``[start, end)`` of one scene, each at most ``max_seconds`` long; a rest
    shorter than ``min_seconds`` (or a whole short scene) is left out. Durations come from
    timestamps (``ends[i]`` is where frame i stops showing), so VFR files cut right."""
    start, stop = scene
    clips = []
    while start < stop:
        # Frames that end within max_seconds of the clip's first frame (at least one frame).
        end = int(np.searchsorted(ends[start:stop], times[start] + max_seconds + 1e-6, side="right")) + start
        end = max(end, start + 1)
        if ends[end - 1] - times[start] + 1e-6 >= min_seconds:
            clips.append((start, end))
        start = end
    return clips
