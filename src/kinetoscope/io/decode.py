"""Decoding and probing of input files, with every failure turned into one named error line.

Frame counts and rates come from decoding, not from headers: WebM/MKV headers report 0
frames and variable-rate files a nominal rate. Comparing the decoded count with the
header's (where it has one) is also what exposes a truncated mp4 whose index survived.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from kinetoscope.errors import KinetoscopeError
from kinetoscope.io.inputs import check_input_file, describe_error

# A measured rate this close to the header's or a round rate is that rate: timestamps are
# rounded to the container's time base (milliseconds in WebM, centiseconds in GIF).
_SNAP_TOLERANCE = 0.005
_GIF_TRAILER = b"\x3b"
# For the rare stream without timestamps or a header rate (FFmpeg's own default).
_FALLBACK_FPS = 25.0


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` learns about a video or image file (images: one frame at ``image_fps``)."""

    path: Path
    num_frames: int
    fps: float
    height: int
    width: int
    duration: float  # seconds: num_frames / fps, the first frame's start to the last one's end
    codec: str  # e.g. "h264", "vp9", "gif", "png"
    container: str  # e.g. "mp4", "webm", "gif", "png"
    pix_fmt: str  # the decoder's pixel format, e.g. "yuv420p"
    rotation: int = 0  # degrees a player turns the picture (display matrix); not applied on read
    has_audio: bool = False


@dataclass
class DecodedVideo:
    """A decoded video: its info and, when asked for, its frames as "h w 3" uint8 arrays."""

    info: VideoInfo
    images: list[np.ndarray] = field(default_factory=list)

def _container_name(container: av.container.InputContainer, path: Path) -> str:
    """The demuxer's short name, preferring the one matching the suffix ("mp4", not "mov,mp4,...")."""
    names = container.format.name.split(",")
    suffix = path.suffix.lower().lstrip(".")
    return suffix if suffix in names else names[0]


def _check_gif_trailer(path: Path) -> None:
    """A GIF cut short still decodes (fewer frames, no error, no frame count to compare), so
    look for the trailer byte that ends every complete GIF (ignoring NUL padding after it)."""
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 64))
        tail = handle.read().rstrip(b"\0")
    if not tail.endswith(_GIF_TRAILER):
        raise KinetoscopeError(f"{path}: truncated, the GIF lacks its end marker (trailer byte 0x3B)")


def _snap(measured: float, nominal: Fraction | None) -> float:
    """The header's rate, a whole rate or an NTSC x/1.001 rate when ``measured`` is that within rounding."""
    candidates = [float(nominal)] if nominal else []
    candidates += [float(round(measured)), round(measured * 1.001) / 1.001]
    for candidate in candidates:
        if candidate > 0 and abs(measured - candidate) <= _SNAP_TOLERANCE * candidate:
            return candidate
    return round(measured, 3)


def rate_from_times(times: list[float], last_duration: float, nominal: Fraction | None) -> float:
    """Frames per second from presentation times (the rate between first and last frame), snapped
    to ``nominal`` or a round rate when within rounding of it."""
    span = max(times) - min(times)
    if len(times) >= 2 and span > 0:
        return _snap((len(times) - 1) / span, nominal)
    if last_duration > 0:
        return _snap(1.0 / last_duration, nominal)
    return float(nominal) if nominal else _FALLBACK_FPS


def decode_video(
    path: str | Path,
    *,
    max_frames: int | None = None,
    to_rgb: bool = False,
    on_frame: Callable[[av.VideoFrame], None] | None = None,
) -> DecodedVideo:
    """Decode the first video stream of ``path``: its VideoInfo and (``to_rgb``) its frames.

    ``on_frame`` sees every decoded frame in order, so a caller can analyse a file in the same
    pass that probes it instead of decoding it twice.

    Raises KinetoscopeError naming the file when it is missing, unreadable, not a video,
    corrupt, truncated or without frames.
    """
    path = Path(path)
    check_input_file(path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise KinetoscopeError(
            f"{path}: not a readable video, corrupt, truncated or another kind of file ({describe_error(err)})"
        ) from None
    # Stream properties must be read while the container is open: afterwards they crash.
    with container:
        if not container.streams.video:
            raise KinetoscopeError(f"{path}: has no video stream")
        if container.streams.video[0].codec_context is None:
            # FFmpeg demuxed the stream but has no decoder for its codec.
            raise KinetoscopeError(f"{path}: unsupported video codec, this FFmpeg build has no decoder for it")
        if container.format.name == "gif":
            _check_gif_trailer(path)
        decoded = _decode_stream(container, path, max_frames, to_rgb, on_frame)
    return decoded


@dataclass
class _Tally:
    """What the decode loop accumulates."""

    count: int = 0
    times: list[float] = field(default_factory=list)
    last_duration: float = 0.0
    height: int = 0
    width: int = 0
    rotation: int = 0
    images: list[np.ndarray] = field(default_factory=list)

    def add(self, frame: av.VideoFrame, to_rgb: bool) -> None:
        if self.count == 0:
            self.height, self.width, self.rotation = frame.height, frame.width, int(getattr(frame, "rotation", 0) or 0)
        self.count += 1
        if frame.pts is not None and frame.time_base is not None:
            self.times.append(float(frame.pts * frame.time_base))
            self.last_duration = float((getattr(frame, "duration", 0) or 0) * frame.time_base)
        if to_rgb:
            # Reformat to the first frame's size: a mid-stream size change must not break stacking.
            rgb = frame.reformat(width=self.width, height=self.height, format="rgb24")
            self.images.append(rgb.to_ndarray())


def _decode_stream(
    container: av.container.InputContainer,
    path: Path,
    max_frames: int | None,
    to_rgb: bool,
    on_frame: Callable[[av.VideoFrame], None] | None,
) -> DecodedVideo:
    """Run the decode loop and check its outcome against the header."""
    stream = container.streams.video[0]
    header_frames = stream.frames
    nominal = stream.average_rate or stream.guessed_rate
    tally = _Tally()
    try:
        for frame in container.decode(stream):
            tally.add(frame, to_rgb)
            if on_frame is not None:
                on_frame(frame)
            if max_frames is not None and tally.count >= max_frames:
                break
    except av.error.FFmpegError as err:
        raise KinetoscopeError(
            f"{path}: corrupt or truncated, decoding failed after {tally.count} frames ({describe_error(err)})"
        ) from None
    if tally.count == 0:
        hint = f" although its header lists {header_frames} (truncated?)" if header_frames else ""
        raise KinetoscopeError(f"{path}: contains no video frames{hint}")
    if max_frames is None and tally.count < header_frames:
        raise KinetoscopeError(
            f"{path}: truncated, its header lists {header_frames} frames but only {tally.count} decode"
        )
    if len(tally.times) == tally.count:
        fps = rate_from_times(tally.times, tally.last_duration, nominal)
    else:
        fps = float(nominal) if nominal else _FALLBACK_FPS
    info = VideoInfo(
        path=path, num_frames=tally.count, fps=fps, height=tally.height, width=tally.width, duration=tally.count / fps,
        codec=stream.codec_context.name, container=_container_name(container, path),
        pix_fmt=stream.codec_context.pix_fmt or "", rotation=tally.rotation, has_audio=bool(container.streams.audio),
    )
    return DecodedVideo(info=info, images=tally.images)
