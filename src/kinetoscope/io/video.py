"""Read and write videos and images as uint8 RGB arrays "t h w c" (c = 3).

Reading goes through PyAV (any container and codec FFmpeg knows) or Pillow for still
images; writing picks the format by suffix: ``.mp4`` (H.264), ``.gif``, ``.png``. Every
problem with an input file surfaces as one ``KinetoscopeError`` line naming the file.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import numpy as np

from kinetoscope.errors import KinetoscopeError
from kinetoscope.io import encode
from kinetoscope.io.atomic import atomic_output
from kinetoscope.io.decode import VideoInfo, decode_video
from kinetoscope.io.image import image_info, is_image_path, read_image
from kinetoscope.io.inputs import describe_error

__all__ = ["VideoInfo", "check_writable", "probe", "read_image", "read_video", "write_video", "WRITABLE_SUFFIXES"]

WRITABLE_SUFFIXES = (".mp4", ".gif", ".png")


def read_video(
    path: str | Path, *, max_frames: int | None = None, image_fps: float = 8.0
) -> tuple[np.ndarray, float]:
    """Decode any container/codec PyAV reads into uint8 frames "t h w c" (RGB, c=3) and fps.

    An image file (PNG, JPEG, WebP, ...) is read as a one-frame video with fps=image_fps.
    ``max_frames`` stops decoding early (the first frames only). The fps comes from the
    frames' timestamps, so variable-rate files give their true average rate.
    Raises KinetoscopeError for a missing, unreadable, corrupt, truncated or empty file.
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    if is_image_path(path):
        return read_image(path)[None], float(image_fps)
    decoded = decode_video(path, max_frames=max_frames, to_rgb=True)
    return np.stack(decoded.images), decoded.info.fps


def probe(path: str | Path, *, image_fps: float = 8.0) -> VideoInfo:
    """Frame count, fps, size, duration, codec and container of a video or image file.

    Decodes the whole video (no RGB conversion): headers alone miss WebM frame counts,
    variable rates and truncation. Raises KinetoscopeError like ``read_video``.
    """
    if is_image_path(path):
        return image_info(path, image_fps)
    return decode_video(path).info


def _validated(frames: np.ndarray | Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Yield "h w 3" uint8 frames, all of the first one's shape; a lone "h w c" is one frame."""
    if getattr(frames, "ndim", None) == 3:
        frames = [frames]
    shape = None
    for index, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(f"frame {index}: expected uint8 'h w 3', got {frame.dtype} {frame.shape}")
        if shape is not None and frame.shape != shape:
            raise ValueError(f"frame {index}: shape {frame.shape} differs from the first frame's {shape}")
        shape = frame.shape
        yield np.ascontiguousarray(frame)


def check_writable(path: Path, num_frames: int | None = None) -> str:
    """The lower-cased suffix of ``path`` if ``write_video`` can write ``num_frames`` there.

    Commands call it before slow work, so a bad output name fails at once, with the same
    message ``write_video`` would give; ``None`` frames skips the one-frame rule of ``.png``.
    """
    suffix = path.suffix.lower()
    if suffix not in WRITABLE_SUFFIXES:
        raise KinetoscopeError(f"{path}: cannot write '{path.suffix}' files; use one of {', '.join(WRITABLE_SUFFIXES)}")
    if suffix == ".png" and num_frames is not None and num_frames != 1:
        raise KinetoscopeError(f"{path}: a .png holds exactly one frame, got {num_frames}; use .mp4 or .gif")
    return suffix


def write_video(path: str | Path, frames: np.ndarray | Iterable[np.ndarray], fps: float, *, crf: int = 18) -> Path:
    """Write frames uint8 "t h w c" (or one image "h w c") to ``path``; return the path.

    The format follows the suffix: ``.mp4`` is H.264 (libx264, yuv420p, constant quality
    ``crf``; 18 or less is visually lossless), ``.gif`` loops forever with a palette that keeps
    up to 256 colours exact, ``.png`` takes exactly one frame. ``frames`` may also be any
    iterable of "h w c" arrays, streamed into the encoder. Atomic: the file appears complete
    or not at all, even on KeyboardInterrupt; a missing parent folder is created.
    """
    path = Path(path)
    suffix = check_writable(path)
    fps = float(fps)
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive finite number, got {fps}")
    if not 0 <= crf <= 51:
        raise ValueError(f"crf must be in 0..51 (libx264's range), got {crf}")
    stream = _validated(frames)
    first = next(stream, None)
    if first is None:
        raise ValueError(f"{path}: no frames to write")
    if suffix == ".mp4":
        encode.check_even_size(path, first)
    if suffix == ".gif":
        encode.check_gif_rate(path, fps)
    if suffix == ".png":
        check_writable(path, 1 + sum(1 for _ in stream))
    try:
        with atomic_output(path) as temporary:
            if suffix == ".mp4":
                encode.write_mp4(temporary, first, stream, fps, crf)
            elif suffix == ".gif":
                encode.write_gif(temporary, first, stream, fps)
            else:
                encode.write_png(temporary, first)
    except (av.error.FFmpegError, OSError) as err:
        raise KinetoscopeError(f"{path}: cannot write it ({describe_error(err)})") from None
    return path
