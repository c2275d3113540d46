"""``kinetoscope edit VIDEO PROMPT -o OUT [--strength S]``: a video redrawn to follow a new prompt.

SDEdit (:class:`~kinetoscope.pipelines.KinetoscopeVideoToVideoPipeline`): VIDEO's latent is noised
to the level ``S`` and denoised with PROMPT, so what survives that much noise (where things are,
how they move) stays and the rest follows the prompt. OUT has VIDEO's frame count and size.
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

from kinetoscope.cli.generate import add_sampling_arguments, check_sampling_arguments, load_pipeline, run_and_write, sampling_kwargs


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``edit`` subcommand."""
    parser = subparsers.add_parser(
        "edit",
        help="edit a video to follow a new prompt (SDEdit)",
        description="Redraw VIDEO to follow PROMPT, keeping its motion: the video is noised to the level S and "
        "denoised with the prompt. Small S changes little, 1 ignores the video. The prompt names what changes "
        "('a blue ball'); what it leaves open is read from VIDEO. OUT has VIDEO's frame count, size and rate.",
    )
    parser.add_argument("video", metavar="VIDEO", type=Path, help="the video (or image) to edit")
    parser.add_argument("prompt", metavar="PROMPT", help="what the video should show, e.g. 'a blue ball'")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output file (.mp4, .gif, or .png for an image)")
    parser.add_argument(
        "--strength", type=float, default=None, metavar="S", help="noise level in (0, 1] (default: the model's, 0.5)"
    )
    add_sampling_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Edit and write; bad input raises KinetoscopeError (exit 2) before the model loads."""
    from kinetoscope.errors import KinetoscopeError
    from kinetoscope.io.video import check_writable, read_video

    started = time.perf_counter()
    if args.strength is not None and not 0 < args.strength <= 1:
        raise KinetoscopeError(f"--strength: must be in (0, 1], got {args.strength}")
    check_sampling_arguments(args)
    check_writable(args.output)
    video, fps = read_video(args.video)
    check_writable(args.output, len(video))

    from kinetoscope.pipelines import KinetoscopeVideoToVideoPipeline

    pipe = KinetoscopeVideoToVideoPipeline(load_pipeline(args))
    call = partial(pipe, args.prompt, video=video, strength=args.strength, **sampling_kwargs(args))
    strength = pipe.defaults.edit_strength if args.strength is None else args.strength
    run_and_write(call, args, fps, started, f" at strength {strength:g}")
    return 0
