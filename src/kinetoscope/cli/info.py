"""``kinetoscope info VIDEO``: frame count, fps, size, duration, codec and container of a file."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kinetoscope.io.video import VideoInfo


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``info`` subcommand."""
    parser = subparsers.add_parser(
        "info",
        help="show frames, fps, size, duration and codec of a video or image",
        description="Decode a video (or image) and print what it holds, one 'key: value' per line. "
        "Frame counts and rates come from decoding, so WebM and variable-rate files report true values.",
    )
    parser.add_argument(
        "video", metavar="VIDEO", help="a video (mp4, webm, mkv, gif, ...) or image (png, jpeg, webp) file"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of 'key: value' lines")
    parser.add_argument(
        "--image-fps",
        type=float,
        default=8.0,
        help="fps to report for a still image, seen as a one-frame video (default: 8)",
    )
    parser.set_defaults(func=run)


def _lines(info: VideoInfo) -> list[str]:
    """The human-readable report: the essentials first, extras after."""
    lines = [
        f"path: {info.path}",
        f"frames: {info.num_frames}",
        f"fps: {info.fps:g}",
        f"size: {info.width}x{info.height}",
        f"duration: {info.duration:.3f} s",
        f"codec: {info.codec}",
        f"container: {info.container}",
        f"pix_fmt: {info.pix_fmt}",
        f"has_audio: {'yes' if info.has_audio else 'no'}",
    ]
    if info.rotation:
        lines.append(f"rotation: {info.rotation}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Probe ``args.video`` and print the report; bad input raises KinetoscopeError (exit 2)."""
    from kinetoscope.errors import KinetoscopeError
    from kinetoscope.io.video import probe

    if not args.image_fps > 0:
        raise KinetoscopeError(f"--image-fps: must be positive, got {args.image_fps:g}")
    info = probe(args.video, image_fps=args.image_fps)
    if args.json:
        record = dataclasses.asdict(info) | {"path": str(info.path)}
        print(json.dumps(record))
    else:
        print("\n".join(_lines(info)))
    return 0
