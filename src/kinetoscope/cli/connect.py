"""``kinetoscope connect VIDEO_A VIDEO_B PROMPT -o OUT --num-frames N``: A, N new frames, then B.

Both videos are kept exactly; the new frames lead from A's last frame into B's first
(:class:`~kinetoscope.pipelines.KinetoscopeConnectPipeline`).
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

from kinetoscope.cli.generate import add_sampling_arguments, check_sampling_arguments, load_pipeline, run_and_write, sampling_kwargs


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``connect`` subcommand."""
    parser = subparsers.add_parser(
        "connect",
        help="connect two videos with generated frames",
        description="Write VIDEO_A, then N new frames, then VIDEO_B: a transition that continues A and leads "
        "into B. Both videos are kept exactly and must have the same size; the output plays at A's frame rate.",
    )
    parser.add_argument("video_a", metavar="VIDEO_A", type=Path, help="the video (or image) to start from")
    parser.add_argument("video_b", metavar="VIDEO_B", type=Path, help="the video (or image) to arrive at")
    parser.add_argument("prompt", metavar="PROMPT", help="what the new frames show, e.g. 'a red ball moving left'")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output file (.mp4 or .gif)")
    parser.add_argument("--num-frames", type=int, required=True, metavar="N", help="how many new frames go between A and B")
    add_sampling_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Connect and write; bad input raises KinetoscopeError (exit 2) before the model loads."""
    from kinetoscope.errors import KinetoscopeError
    from kinetoscope.io.video import check_writable, read_video

    started = time.perf_counter()
    if args.num_frames < 1:
        raise KinetoscopeError(f"--num-frames: must be at least 1, got {args.num_frames}")
    check_sampling_arguments(args)
    check_writable(args.output)
    a, fps = read_video(args.video_a)
    b, _ = read_video(args.video_b)
    if a.shape[1:] != b.shape[1:]:
        raise KinetoscopeError(
            f"{args.video_b}: is {b.shape[2]}x{b.shape[1]} but {args.video_a} is {a.shape[2]}x{a.shape[1]}; "
            "both videos need the same size"
        )
    check_writable(args.output, len(a) + args.num_frames + len(b))

    from kinetoscope.pipelines import KinetoscopeConnectPipeline

    pipe = KinetoscopeConnectPipeline(load_pipeline(args))
    call = partial(pipe, args.prompt, video=a, last_video=b, num_frames=args.num_frames, **sampling_kwargs(args))
    run_and_write(call, args, fps, started, f", new frames {len(a)}..{len(a) + args.num_frames - 1}")
    return 0
