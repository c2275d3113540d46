"""``kinetoscope generate PROMPT -o OUT``: a video (or, with ``--num-frames 1``, an image) from text."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``generate`` subcommand."""
    parser = subparsers.add_parser(
        "generate",
        help="generate a video or image from a text prompt",
        description="Generate a video from a prompt with the shipped model (or --model DIR). The prompt is "
        "upsampled to a detailed Shapes World caption first (--no-upsample to pass it as written); attributes "
        "it leaves open are drawn from --seed. OUT's suffix picks the format: .mp4, .gif, or .png for one frame.",
    )
    parser.add_argument("prompt", help="what to show, e.g. 'a big red ball moving left on grey'")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output file (.mp4, .gif, or .png with --num-frames 1)")
    parser.add_argument("--num-frames", type=int, default=None, help="frames to generate (default: 16; 1 gives an image)")
    parser.add_argument("--height", type=int, default=None, help="frame height, a multiple of 8 (default: 64)")
    parser.add_argument("--width", type=int, default=None, help="frame width, a multiple of 8 (default: 64)")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's, 24)")
    parser.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (default: the model's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise and of open attributes (default: 0)")
    parser.add_argument("--negative-prompt", default=None, help="what to steer away from (default: the empty prompt)")
    parser.add_argument("--sampler", choices=("euler", "heun"), default=None, help="ODE sampler (default: the model's, euler)")
    parser.add_argument("--no-upsample", action="store_true", help="encode the prompt as written, without upsampling")
    parser.add_argument("--model", type=Path, default=None, help="model folder from 'kinetoscope train dit' (default: the shipped model)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: 0, one per core)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate and write; bad input raises KinetoscopeError (exit 2) before any model loads."""
    from kinetoscope.errors import KinetoscopeError
    from kinetoscope.io.video import check_writable

    started = time.perf_counter()
    num_frames = 16 if args.num_frames is None else args.num_frames
    if num_frames < 1:
        raise KinetoscopeError(f"--num-frames: must be at least 1, got {num_frames}")
    if not args.prompt.strip():
        raise KinetoscopeError("PROMPT: is empty; say what to show, e.g. 'a red ball moving left'")
    check_writable(args.output, num_frames)
    if args.model is not None and not args.model.is_dir():
        raise KinetoscopeError(f"--model {args.model}: not a folder")

    import torch

    from kinetoscope.io.video import write_video
    from kinetoscope.pipelines.text_to_video import KinetoscopePipeline
    from kinetoscope.shapes.spec import FPS

    if args.threads < 0:
        raise KinetoscopeError(f"--threads: must be 0 or more, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = KinetoscopePipeline.from_pretrained(args.model)
    try:
        out = pipe(
            args.prompt,
            negative_prompt=args.negative_prompt,
            num_frames=num_frames,
            height=args.height,
            width=args.width,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            seed=args.seed,
            sampler=args.sampler,
            upsample_prompt=False if args.no_upsample else None,
        )
    except ValueError as err:
        raise KinetoscopeError(str(err)) from None
    frames = out.frames[0]
    write_video(args.output, frames, float(FPS))
    t, h, w = frames.shape[:3]
    sys.stderr.write(f"prompt: {out.prompts[0]}\n")
    print(f"wrote {args.output}: {t} frame{'s' if t != 1 else ''} of {w}x{h} in {time.perf_counter() - started:.1f} s")
    return 0
