"""Writing the cut clips: a second decode of the source, each clip streamed into its own mp4.

Clips are re-encoded (H.264 through :func:`kinetoscope.io.video.write_video`, atomic), not
stream-copied: a copy can only start on a keyframe, and a clip must start on its first frame.
Frames are turned upright by the file's rotation, optionally scaled, and cropped to even sides
(H.264 in 4:2:0 needs them). A few frames of each clip are kept for the captioner and scorers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from kinetoscope.data.curate.probe import upright
from kinetoscope.errors import KinetoscopeError
from kinetoscope.io.inputs import describe_error
from kinetoscope.io.video import write_video


@dataclass
class ClipPlan:
    """Frames ``[start, end)`` of the source, to be written to ``path`` at ``fps``."""

    start: int
    end: int
    path: Path
    fps: float


@dataclass
class WrittenClip:
    """What was written: frame count and size, and the sampled frames (RGB "h w 3")."""

    num_frames: int = 0
    height: int = 0
    width: int = 0
    samples: list[np.ndarray] = field(default_factory=list)


def sample_positions(start: int, end: int) -> list[int]:
    """The frames at 1/4, 1/2 and 3/4 of ``[start, end)`` (the same ones the hashes use)."""
    n = end - start
    return sorted({start + n // 4, start + n // 2, start + 3 * n // 4})


def scaled_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """Stored (height, width) to decode at: ``short_side`` on the short side (never enlarged,
    even sides), or the file's own size when ``short_side`` is 0."""
    if not short_side or short_side >= min(height, width):
        return height, width
    scale = short_side / min(height, width)
    return max(2, round(height * scale / 2) * 2), max(2, round(width * scale / 2) * 2)


@contextmanager
def _frames(path: Path) -> Iterator[Iterator[av.VideoFrame]]:
    try:
        with av.open(str(path)) as container:
            yield container.decode(container.streams.video[0])
    except av.error.FFmpegError as err:
        raise KinetoscopeError(f"{path}: decoding failed while writing clips ({describe_error(err)})") from None


def _picture(frame: av.VideoFrame, short_side: int) -> np.ndarray:
    height, width = scaled_size(frame.height, frame.width, short_side)
    image = upright(frame.reformat(width=width, height=height, format="rgb24").to_ndarray(), int(frame.rotation or 0))
    return image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]


def write_clips(path: Path, plans: list[ClipPlan], *, short_side: int, crf: int) -> list[WrittenClip]:
    """Write every planned clip (in order, not overlapping) in one pass over ``path``."""
    written = []
    with _frames(path) as decoded:
        frames = enumerate(decoded)
        for plan in plans:
            result = WrittenClip()
            picks = set(sample_positions(plan.start, plan.end))

            def clip_frames(plan: ClipPlan = plan, result: WrittenClip = result) -> Iterator[np.ndarray]:
                for index, frame in frames:
                    if index < plan.start:
                        continue
                    image = _picture(frame, short_side)
                    result.num_frames += 1
                    result.height, result.width = image.shape[:2]
                    if index in picks:
                        result.samples.append(image)
                    yield image
                    if index >= plan.end - 1:
                        return

            plan.path.parent.mkdir(parents=True, exist_ok=True)
            write_video(plan.path, clip_frames(), plan.fps, crf=crf)
            written.append(result)
    return written
