"""``kinetoscope extend VIDEO PROMPT -o OUT --num-frames N [--backward]``: a video grown in time.

OUT is VIDEO, exactly as read, followed by N new frames (``--backward``: N new frames, then
VIDEO). Any N works: past what the model makes in one go, it continues window by window, each
holding the frames next to it (:mod:`kinetoscope.pipelines.extend`).
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

from kinetoscope.cli.generate import add_sampling_arguments, check_sampling_arguments, load_pipeline, run_and_write, sampling_kwargs


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``extend`` subcommand."""
    parser = subparsers.add_parser(
        "extend",
        help="extend a video forward (or backward) in time",
        description="Write VIDEO followed by N new frames that continue it (with --backward, N new frames that "
        "lead into it). VIDEO's frames are kept exactly; the new ones follow PROMPT, upsampled to a Shapes World "
        "caption whose open attributes are read from VIDEO. The output plays at VIDEO's frame rate.",
    )
    parser.add_argument("video", metavar="VIDEO", type=Path, help="the video to extend (mp4, gif, webm, ...; or an image)")
    parser.add_argument("prompt", metavar="PROMPT", help="what the new frames show, e.g. 'a red ball moving left'")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output file (.mp4 or .gif)")
    parser.add_argument("--num-frames", type=int, required=True, metavar="N", help="how many new frames to add")
    parser.add_argument("--backward", action="store_true", help="add the new frames before VIDEO instead of after it")
    add_sampling_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Extend and write; bad input raises KinetoscopeError (exit 2) before the model loads."""
    from kinetoscope.errors import KinetoscopeError
    from kinetoscope.io.video import check_writable, read_video

    started = time.perf_counter()
    if args.num_frames < 1:
        raise KinetoscopeError(f"--num-frames: must be at least 1, got {args.num_frames}")
    check_sampling_arguments(args)
    check_writable(args.output)
    video, fps = read_video(args.video)
    check_writable(args.output, len(video) + args.num_frames)

    from kinetoscope.pipelines import KinetoscopeExtendPipeline

    pipe = KinetoscopeExtendPipeline(load_pipeline(args))
    call = partial(pipe, args.prompt, video=video, num_frames=args.num_frames, backward=args.backward, **sampling_kwargs(args))
    where = f"frames {args.num_frames}..{len(video) + args.num_frames - 1}" if args.backward else f"frames 0..{len(video) - 1}"
    run_and_write(call, args, fps, started, f", VIDEO at {where}")
    return 0
