"""One decode pass per source: probe it (PyAV) and feed every frame to the per-frame analysers.

Scene detection, flow, quality measures and hashes all need every frame, but only small ones;
decoding is the expensive part, so it happens once: each frame is scaled to the analysis size
(short side ``analysis_size``), turned upright by the file's rotation, and handed to each
analyser, which keeps a number or two per frame. Clips are then scored from those arrays, so
a long file costs memory per frame of a few floats, never of pixels.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import av
import numpy as np

from kinetoscope.io.decode import VideoInfo, decode_video


@dataclass
class StageClock:
    """Seconds spent per stage (probe, scenes, motion, ...), summed over sources for the benchmark."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


class Frame:
    """One decoded frame as the analysers see it: upright, small, BGR (OpenCV's order)."""

    __slots__ = ("index", "time", "bgr", "source", "_gray")

    def __init__(self, index: int, time: float, bgr: np.ndarray, source: av.VideoFrame) -> None:
        self.index, self.time, self.bgr, self.source = index, time, bgr, source
        self._gray: np.ndarray | None = None

    @property
    def gray(self) -> np.ndarray:
        """Luma "h w" uint8, computed once for all analysers."""
        if self._gray is None:
            import cv2

            self._gray = cv2.cvtColor(self.bgr, cv2.COLOR_BGR2GRAY)
        return self._gray


class Analyser(Protocol):
    """Sees every frame of a source in order; ``stage`` names its line in the timing table."""

    stage: str

    def add(self, frame: Frame) -> None: ...


def analysis_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) scaled so the short side is ``short_side`` (never enlarged), even sides."""
    scale = min(1.0, short_side / min(height, width))
    return max(2, round(height * scale / 2) * 2), max(2, round(width * scale / 2) * 2)


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """``image`` turned as a player shows it: ``rotation`` is counter-clockwise degrees (PyAV's
    ``VideoFrame.rotation``, from the display matrix), and so is ``np.rot90``."""
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


@dataclass
class ProbeResult:
    """What the pass learned: the file's info and each frame's start time in seconds."""

    info: VideoInfo
    times: np.ndarray
    # The last frame's duration (its successor's start is unknown); 1 / fps when the file omits it.
    last_duration: float

    @property
    def ends(self) -> np.ndarray:
        """Each frame's end time (the next one's start), for clip durations in VFR files too."""
        return np.append(self.times[1:], self.times[-1] + self.last_duration)

    @property
    def is_vfr(self) -> bool:
        """Whether frame gaps differ by more than timestamp rounding (1 ms) plus 10 %."""
        gaps = np.diff(self.times)
        return bool(gaps.size) and float(gaps.max() - gaps.min()) > 0.001 + 0.1 * float(np.median(gaps))


def analyse(path: Path, short_side: int, analysers: Sequence[Analyser], clock: StageClock) -> ProbeResult:
    """Decode ``path`` once, probing it and running ``analysers``; KinetoscopeError names a bad file."""
    times: list[float] = []
    durations: list[float] = []
    size: tuple[int, int] | None = None
    spent = {a.stage: 0.0 for a in analysers}

    def on_frame(frame: av.VideoFrame) -> None:
        nonlocal size
        index = len(times)
        if frame.pts is not None and frame.time_base is not None:
            start = float(frame.pts * frame.time_base)
            durations.append(float((frame.duration or 0) * frame.time_base))
        else:  # no timestamps at all: evenly spaced at FFmpeg's default rate
            start = index / 25.0
        # Durations need increasing times; a damaged file can repeat or reorder a timestamp.
        times.append(max(start, times[-1] + 1e-6) if times else start)
        if size is None:
            size = analysis_size(frame.height, frame.width, short_side)
        small = frame.reformat(width=size[1], height=size[0], format="bgr24").to_ndarray()
        shown = Frame(index, times[-1], upright(small, int(frame.rotation or 0)), frame)
        for analyser in analysers:
            tic = time.perf_counter()
            analyser.add(shown)
            spent[analyser.stage] += time.perf_counter() - tic

    tic = time.perf_counter()
    try:
        info = decode_video(path, on_frame=on_frame).info
    finally:
        # Decoding and scaling count as probing; each analyser's own time as its stage.
        clock.add("probe", time.perf_counter() - tic - sum(spent.values()))
        for stage, seconds in spent.items():
            clock.add(stage, seconds)
    last = durations[-1] if durations and durations[-1] > 0 else 1.0 / info.fps
    return ProbeResult(info, np.asarray(times, np.float64), last)
