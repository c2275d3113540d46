"""``kinetoscope generate PROMPT -o OUT``: a video (or, with ``--num-frames 1``, an image) from text,
or with ``--image IMG`` from an image that becomes frame ``--image-frame``.

Also home of the options every generating command shares (``--model --steps --guidance
--guidance-rescale --guidance-interval --shift --seed --negative-prompt --sampler --no-upsample
--threads``): ``extend``, ``connect`` and ``edit`` add them with :func:`add_sampling_arguments` and
load the model with :func:`load_pipeline`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """The model and sampling options of every generating command."""
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's, 16)")
    parser.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (default: the model's)")
    add_guidance_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise and of open attributes (default: 0)")
    parser.add_argument("--negative-prompt", default=None, help="what to steer away from (default: the empty prompt)")
    parser.add_argument("--contrast-prompt", default=None, metavar="TEXT",
                        help="a caption whose motion the video must not have, for --contrast-scale (default: the "
                        "upsampled prompt with its motion reversed, or exchanged between two objects)")  # fmt: skip
    parser.add_argument("--no-upsample", action="store_true", help="encode the prompt as written, without upsampling")
    add_model_arguments(parser)
    add_placement_arguments(parser)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--lora`` and ``--lora-scale``: which weights a command samples (see :func:`load_pipeline`)."""
    parser.add_argument("--model", type=Path, default=None, help="model folder from 'kinetoscope train dit' (default: the shipped model)")
    parser.add_argument("--lora", type=Path, default=None, metavar="DIR",
                        help="adapt the model with a LoRA adapter folder ('train dit --lora-rank' writes EXPORT/lora)")  # fmt: skip
    parser.add_argument("--lora-scale", type=float, default=1.0, metavar="S",
                        help="how strongly --lora adapts: 0 not at all, 1 as trained (default: 1)")  # fmt: skip


def check_model_arguments(args: argparse.Namespace) -> None:
    """Refuse a missing ``--model`` or ``--lora`` folder, a bad ``--lora-scale`` or ``--threads``, before anything loads."""
    from kinetoscope.errors import KinetoscopeError

    if args.model is not None and not args.model.is_dir():
        raise KinetoscopeError(f"--model {args.model}: not a folder")
    if args.threads < 0:
        raise KinetoscopeError(f"--threads: must be 0 or more, got {args.threads}")
    if args.lora is not None and not args.lora.is_dir():
        raise KinetoscopeError(f"--lora {args.lora}: not a folder")
    if not math.isfinite(args.lora_scale):
        raise KinetoscopeError(f"--lora-scale: must be a finite number, got {args.lora_scale}")


def add_placement_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device``, ``--dtype`` and ``--threads``: where a model runs (see :func:`load_pipeline`)."""
    parser.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda, cuda:1, ... (default: auto)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                        help="the weights' dtype: bfloat16 or float16 halve a GPU's memory and time; the sampler "
                        "integrates in float32 whatever it is (default: float32)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: 0, one per core)")


def load_pipeline(args: argparse.Namespace):
    """The model of ``--model`` (or the shipped one) on ``--device`` in ``--dtype``, with
    ``--threads`` applied; an unusable device or thread count is a KinetoscopeError."""
    import torch

    from kinetoscope.errors import KinetoscopeError
    from kinetoscope.pipelines.text_to_video import KinetoscopePipeline
    from kinetoscope.training.run import resolve_device

    if args.threads < 0:
        raise KinetoscopeError(f"--threads: must be 0 or more, got {args.threads}")
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = KinetoscopePipeline.from_pretrained(args.model, device=device)
    if getattr(args, "lora", None) is not None:  # demo has no --lora
        pipe.load_lora_weights(args.lora, args.lora_scale)  # fused in float32, then cast with the rest
    return pipe.to(dtype=getattr(torch, args.dtype))


def add_guidance_arguments(parser: argparse.ArgumentParser) -> None:
    """``--guidance-rescale``, ``--guidance-interval``, ``--shift``, ``--sampler``, ``--eta`` and the contrast's
    ``--contrast-scale`` and ``--contrast-interval``, shared with the evaluations."""
    parser.add_argument("--guidance-rescale", type=float, default=None, metavar="R",
                        help="in [0, 1]: pull the guided velocity's spread back toward the conditional one's "
                        "(diffusers' guidance_rescale; default: the model's, 0)")  # fmt: skip
    parser.add_argument("--guidance-interval", type=guidance_interval, default=None, metavar="LO,HI",
                        help="guide only the steps whose time t (1 noise, 0 clean) is in [LO, HI]; the others make one "
                        "model call instead of two (default: the model's; 0,1 guides every step)")  # fmt: skip
    parser.add_argument("--shift", type=float, default=None, metavar="S",
                        help="timestep shift of the sampling schedule, above 0; more than 1 spends more steps at "
                        "high noise (default: the model's, else by token count)")  # fmt: skip
    parser.add_argument("--sampler", choices=("euler", "heun", "sde"), default=None,
                        help="euler or heun (ODE), or sde: DDIM's stochastic steps, part of the noise redrawn at each "
                        "(--eta) (default: the model's; the shipped one: sde)")  # fmt: skip
    parser.add_argument("--eta", type=float, default=None, metavar="E",
                        help="in [0, 1]: how much noise --sampler sde redraws per step, DDIM's eta: 1 ancestral, 0 Euler "
                        "(default: the model's, 1)")  # fmt: skip
    parser.add_argument("--contrast-scale", type=float, default=None, metavar="W",
                        help="0 or more: contrastive guidance, pushing away from the prompt with its motion reversed (one "
                        "object) or exchanged (two) at the steps in --contrast-interval; 0 turns it off; images (one "
                        "frame) never get it (default: the model's)")  # fmt: skip
    parser.add_argument("--contrast-interval", type=guidance_interval, default=None, metavar="LO,HI",
                        help="the times t at which --contrast-scale acts (default: the model's, 0.7,1: where motion is "
                        "laid out)")  # fmt: skip


def guidance_interval(text: str) -> tuple[float, float]:
    """'0.3,1' -> (0.3, 1.0) for argparse (a bad value exits 2 with argparse's one-line message)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 2 or not 0 <= values[0] < values[1] <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LO,HI with 0 <= LO < HI <= 1, e.g. 0.3,1")
    return values  # type: ignore[return-value]


def check_guidance_arguments(args: argparse.Namespace) -> None:
    """Refuse a bad ``--guidance-rescale`` or ``--shift`` before anything loads."""
    from kinetoscope.errors import KinetoscopeError

    if args.guidance_rescale is not None and not 0 <= args.guidance_rescale <= 1:
        raise KinetoscopeError(f"--guidance-rescale: must be in [0, 1], got {args.guidance_rescale}")
    if args.shift is not None and not args.shift > 0:
        raise KinetoscopeError(f"--shift: must be above 0, got {args.shift}")
    if args.eta is not None and not 0 <= args.eta <= 1:
        raise KinetoscopeError(f"--eta: must be in [0, 1], got {args.eta}")
    if args.contrast_scale is not None and not args.contrast_scale >= 0:
        raise KinetoscopeError(f"--contrast-scale: must be 0 or more, got {args.contrast_scale}")


def check_sampling_arguments(args: argparse.Namespace) -> None:
    """Refuse a bad prompt, model folder or thread count before anything loads."""
    from kinetoscope.errors import KinetoscopeError

    if not args.prompt.strip():
        raise KinetoscopeError("PROMPT: is empty; say what to show, e.g. 'a red ball moving left'")
    check_model_arguments(args)
    check_guidance_arguments(args)


def guidance_kwargs(args: argparse.Namespace) -> dict:
    """The pipeline arguments that ``--steps --guidance`` and :func:`add_guidance_arguments`' options set
    (None: the model's default), shared with the evaluations."""
    return {
        "num_inference_steps": args.steps,
        "guidance_scale": args.guidance,
        "guidance_rescale": args.guidance_rescale,
        "guidance_interval": args.guidance_interval,
        "shift": args.shift,
        "sampler": args.sampler,
        "eta": args.eta,
        "contrast_scale": args.contrast_scale,
        "contrast_interval": args.contrast_interval,
    }


def sampling_kwargs(args: argparse.Namespace) -> dict:
    """The pipeline arguments the shared options set."""
    return {
        "negative_prompt": args.negative_prompt,
        "contrast_prompt": args.contrast_prompt,
        "seed": args.seed,
        "upsample_prompt": False if args.no_upsample else None,
        **guidance_kwargs(args),
    }


def run_and_write(call: Callable[[], Any], args: argparse.Namespace, fps: float, started: float, note: str = "") -> None:
    """``call()`` (a pipeline call) with its ValueErrors as one-line errors; its first video written to
    ``--output`` and reported (see :func:`report`)."""
    from kinetoscope.errors import KinetoscopeError
    from kinetoscope.io.video import write_video

    try:
        out = call()
    except ValueError as err:
        raise KinetoscopeError(str(err)) from None
    write_video(args.output, out.frames[0], fps)
    report(args, out.frames[0], out.prompts[0], started, note)


def report(args: argparse.Namespace, frames, prompt: str, started: float, note: str = "") -> None:
    """The caption on stderr and one line about what was written on stdout."""
    t, h, w = frames.shape[:3]
    sys.stderr.write(f"prompt: {prompt}\n")
    print(f"wrote {args.output}: {t} frame{'s' if t != 1 else ''} of {w}x{h}{note} in {time.perf_counter() - started:.1f} s")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``generate`` subcommand."""
    parser = subparsers.add_parser(
        "generate",
        help="generate a video or image from a text prompt (and an image)",
        description="Generate a video from a prompt with the shipped model (or --model DIR). The prompt is "
        "upsampled to a detailed Shapes World caption first (--no-upsample to pass it as written); attributes "
        "it leaves open are read from --image where it shows them and drawn from --seed otherwise. With "
        "--image, the image is frame --image-frame of the video, exactly as given, and sets its size. OUT's "
        "suffix picks the format: .mp4, .gif, or .png for one frame.",
    )
    parser.add_argument("prompt", help="what to show, e.g. 'a big red ball moving left on grey'")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output file (.mp4, .gif, or .png with --num-frames 1)")
    parser.add_argument("--num-frames", type=int, default=None, help="frames to generate (default: 16; 1 gives an image)")
    parser.add_argument("--height", type=int, default=None, help="frame height, a multiple of 8 (default: 64, or the image's)")
    parser.add_argument("--width", type=int, default=None, help="frame width, a multiple of 8 (default: 64, or the image's)")
    parser.add_argument("--image", type=Path, default=None, metavar="IMG", help="an image to animate (png, jpeg, ...)")
    parser.add_argument(
        "--image-frame", type=int, default=0, metavar="K", help="which frame the image is: 0 the first (default), -1 the last"
    )
    add_sampling_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate and write; bad input raises KinetoscopeError (exit 2) before any model loads."""
    from kinetoscope.errors import KinetoscopeError
    from kinetoscope.io.video import check_writable, read_video

    started = time.perf_counter()
    num_frames = 16 if args.num_frames is None else args.num_frames
    if num_frames < 1:
        raise KinetoscopeError(f"--num-frames: must be at least 1, got {num_frames}")
    check_sampling_arguments(args)
    check_writable(args.output, num_frames)
    image = None
    if args.image is None and args.image_frame != 0:
        raise KinetoscopeError("--image-frame: needs --image")
    if args.image is not None:
        if not -num_frames <= args.image_frame < num_frames:
            raise KinetoscopeError(
                f"--image-frame: must be in {-num_frames}..{num_frames - 1} for {num_frames} frames, got {args.image_frame}"
            )
        frames, _ = read_video(args.image, max_frames=2)
        if len(frames) != 1:
            raise KinetoscopeError(f"--image {args.image}: is a video; pass one image (png, jpeg, ...)")
        image = frames[0]
        h, w = image.shape[:2]
        for name, asked, actual in (("--height", args.height, h), ("--width", args.width, w)):
            if asked is not None and asked != actual:
                raise KinetoscopeError(
                    f"--image {args.image}: is {w}x{h} but {name} asks for {asked}; the video takes the image's size"
                )

    from kinetoscope.pipelines import KinetoscopeImageToVideoPipeline
    from kinetoscope.shapes.spec import FPS

    pipe = load_pipeline(args)
    kwargs = sampling_kwargs(args)
    if image is None:
        call = partial(pipe, args.prompt, num_frames=num_frames, height=args.height, width=args.width, **kwargs)
    else:
        i2v = KinetoscopeImageToVideoPipeline(pipe)
        call = partial(i2v, args.prompt, image=image, image_frame=args.image_frame, num_frames=num_frames, **kwargs)
    note = f", the image at frame {args.image_frame % num_frames}" if image is not None else ""
    run_and_write(call, args, float(FPS), started, note)
    return 0
