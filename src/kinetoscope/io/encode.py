"""Writers behind ``write_video``: H.264 mp4, GIF and PNG, each into a given (temporary) path.

Frames arrive as a first frame plus an iterator of the rest, all validated uint8 "h w 3"
arrays, so a long clip streams into the mp4 encoder; GIF needs the whole clip up front for
its shared palette.
"""

from __future__ import annotations

import functools
import io
import itertools
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import numpy as np
from PIL import Image

from kinetoscope.errors import KinetoscopeError
from kinetoscope.io.palette import build_palette

# GIF delays are whole centiseconds.
_GIF_TIME_BASE = Fraction(1, 100)


def rate_fraction(fps: float) -> Fraction:
    """fps as the exact small fraction PyAV wants (30000/1001 stays 30000/1001, 8.0 is 8)."""
    return Fraction(fps).limit_denominator(1001)


def write_mp4(target: Path, first: np.ndarray, rest: Iterator[np.ndarray], fps: float, crf: int) -> None:
    """H.264 (libx264, yuv420p, constant quality ``crf``) in an mp4 with the index up front."""
    height, width = first.shape[:2]
    # +faststart moves the index before the data so players can start before the download ends.
    with av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=rate_fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), **_x264_cpu_options()}
        for index, frame in enumerate(itertools.chain([first], rest)):
            # Converting to yuv420p ourselves, not inside stream.encode, makes the output
            # byte-identical run to run: the encoder's implicit conversion varied at edge pixels.
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
            video_frame.pts = index
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode())


@functools.cache
def _x264_cpu_options() -> dict[str, str]:
    """libx264's options that keep its output the same bytes run to run on this CPU.

    x264 is meant to be deterministic, but its AVX-512 code is not: on an AVX-512 machine the
    same frames gave other bytes in 19 of 300 writes with one encoder thread and 7 of 300 with
    x264's own thread count, and in 0 of 600 with AVX-512 left out, at the same speed. So we ask x264 which instruction sets it found (it
    says so in its log) and hand back all but AVX-512; elsewhere its own choice stands.
    """
    level = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)
    try:
        with av.logging.Capture() as logs, av.open(io.BytesIO(), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=1)
            stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
            frame = av.VideoFrame(16, 16, "yuv420p")
            frame.pts = 0
            container.mux(stream.encode(frame))
            container.mux(stream.encode())
    finally:
        av.logging.set_level(level)
    prefix = "using cpu capabilities:"
    found = [message.split(prefix, 1)[1].split() for _, _, message in logs if prefix in message]
    if not found or "AVX512" not in found[0]:
        return {}
    return {"x264-params": "asm=" + ",".join(flag for flag in found[0] if flag != "AVX512")}


def _gif_timestamps(count: int, fps: float) -> list[int]:
    """Frame start times in centiseconds, plus the end time as a last entry.

    Rounding the cumulative time (not each delay) keeps the average rate exact: at 8 fps the
    delays alternate 12 and 13 cs instead of all being 12 (which would play at 8.33 fps).
    """
    return [round(i * 100 / fps) for i in range(count + 1)]


def write_gif(target: Path, first: np.ndarray, rest: Iterator[np.ndarray], fps: float) -> None:
    """An endlessly looping GIF with one palette for the whole clip (see ``build_palette``)."""
    clip = np.stack([first, *rest])
    indices, palette = build_palette(clip)
    # PyAV wants the pal8 palette as 256 ARGB rows; every entry opaque.
    argb = np.concatenate([np.full((len(palette), 1), 255, np.uint8), palette], axis=1)
    times = _gif_timestamps(len(clip), fps)
    delays = {start: end - start for start, end in zip(times, times[1:])}
    with av.open(str(target), "w", format="gif", options={"loop": "0"}) as container:
        stream = container.add_stream("gif", rate=rate_fraction(fps))
        stream.width, stream.height, stream.pix_fmt = clip.shape[2], clip.shape[1], "pal8"
        stream.codec_context.time_base = _GIF_TIME_BASE
        for index, image in enumerate(indices):
            video_frame = av.VideoFrame.from_ndarray((image, argb), format="pal8")
            video_frame.pts, video_frame.time_base = times[index], _GIF_TIME_BASE
            container.mux(_with_delays(stream.encode(video_frame), delays))
        container.mux(_with_delays(stream.encode(), delays))


def _with_delays(packets: list[av.Packet], delays: dict[int, int]) -> list[av.Packet]:
    """Give each packet its own delay (by start time); the muxer would guess the last one's."""
    for packet in packets:
        packet.duration = delays[packet.pts]
    return packets


def write_png(target: Path, first: np.ndarray) -> None:
    """A single RGB PNG."""
    Image.fromarray(first).save(target, format="PNG")


def check_gif_rate(path: Path, fps: float) -> None:
    """GIF delays are whole centiseconds, so two frames less than 1 cs apart cannot both show."""
    if fps > 100:
        raise KinetoscopeError(f"{path}: a GIF plays at most 100 fps (delays are whole centiseconds), got {fps:g}")


def check_even_size(path: Path, first: np.ndarray) -> None:
    """H.264 in 4:2:0 stores colour at half resolution, so it rejects odd sizes."""
    height, width = first.shape[:2]
    if height % 2 or width % 2:
        raise KinetoscopeError(
            f"{path}: H.264 needs an even width and height, got {width}x{height}; "
            "write a .gif or .png instead, or crop or pad the frames"
        )
