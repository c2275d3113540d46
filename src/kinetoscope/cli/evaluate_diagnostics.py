"""``kinetoscope eval caption-swap``, ``eval one-step`` and ``eval word-attention``: diagnostics of
what a trained model uses.

Unlike ``eval t2v`` they generate nothing: they probe the denoiser on held-out or cached clips,
``caption-swap`` by the loss gap when one caption word is swapped, ``one-step`` by judging the
clean clip it predicts in one step from each noise level, ``word-attention`` by where an object's
video tokens look in a two-object caption.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kinetoscope.errors import KinetoscopeError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the diagnostic sub-subcommands to ``eval``'s."""
    _register_caption_swap(subparsers)
    _register_one_step(subparsers)
    _register_word_attention(subparsers)


def _check_clips_and_model(args: argparse.Namespace) -> None:
    """The checks every diagnostic makes: at least one clip, and a model folder that exists."""
    if args.clips < 1:
        raise KinetoscopeError(f"--clips: must be at least 1, got {args.clips}")
    if args.model is not None and not args.model.is_dir():
        raise KinetoscopeError(f"--model {args.model}: not a folder")


def _register_caption_swap(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "caption-swap",
        help="which caption words a model uses: its loss with one attribute swapped",
        description="On cached Shapes World latents (from 'train dit'), compare the model's velocity "
        "loss with the true caption and with one attribute swapped (colour, shape, size, background, "
        "speed, direction reversed, direction turned a quarter); a gap of zero means the words are ignored. "
        "On two-object clips: both directions reversed, and colour, shape or direction exchanged between "
        "the objects (the same words, tied to the other object: a gap measures binding).",
    )
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--cache", type=Path, required=True, help="latent cache folder of the model's VAE (e.g. runs/dit/latents)")
    parser.add_argument("--clips", type=int, default=64, help="clips per attribute (default: 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (default: 0)")
    parser.add_argument(
        "--times",
        type=float,
        nargs="+",
        default=[0.3, 0.5, 0.7, 0.9],
        metavar="T",
        help="diffusion times to measure at, each in (0, 1) (default: 0.3 0.5 0.7 0.9; motion words "
        "matter most at 0.9-0.98, where x_t no longer shows the trajectory)",
    )
    parser.add_argument("--json", action="store_true", help="print every row as JSON")
    parser.set_defaults(func=run_caption_swap)


def run_caption_swap(args: argparse.Namespace) -> int:
    """Loss gaps per attribute and time; prints a table (or JSON)."""
    _check_clips_and_model(args)
    if any(not 0 < t < 1 for t in args.times):
        raise KinetoscopeError(f"--times: each must lie in (0, 1), got {' '.join(map(str, args.times))}")
    if not args.cache.is_dir():
        raise KinetoscopeError(f"--cache {args.cache}: not a folder")
    from kinetoscope.data.latent_cache import load_buckets, vae_fingerprint
    from kinetoscope.evaluation.caption_swap import caption_swap_gaps
    from kinetoscope.pipelines.text_to_video import KinetoscopePipeline
    from kinetoscope.shapes.spec import SceneSpec

    pipe = KinetoscopePipeline.from_pretrained(args.model)
    buckets = [b for b in load_buckets(args.cache, vae_fingerprint(pipe.vae)) if all("scene" in r for r in b.records)]
    if not buckets:
        raise KinetoscopeError(f"--cache {args.cache}: no bucket with Shapes World scenes in its records")
    bucket = max(buckets, key=lambda b: (b.shape[1], b.latents.shape[0]))  # the longest clips
    scenes = [SceneSpec.from_dict(r["scene"]) for r in bucket.records]
    rows = caption_swap_gaps(
        pipe.transformer, pipe.text_encoder, bucket.latents, scenes, times=args.times, max_clips=args.clips, seed=args.seed
    )
    if args.json:
        print(json.dumps(rows))
        return 0
    name = max(len(r["attribute"]) for r in rows) + 1 if rows else 10
    print(f"{'attribute':<{name}}{'clips':>6}{'t':>6}{'loss true':>11}{'swapped':>10}{'gap':>9}")
    for row in rows:
        print(f"{row['attribute']:<{name}}{row['clips']:>6}{row['t']:>6.2f}{row['loss_true']:>11.4f}"
              f"{row['loss_swapped']:>10.4f}{row['gap']:>9.4f}")  # fmt: skip
    return 0


_ONE_STEP_COLUMNS = ("all_correct", "presence", "color", "shape", "size", "direction", "speed", "area", "background")


def _register_one_step(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "one-step",
        help="how much of the prompt one-step predictions keep at each noise level (the analyzer on them)",
        description="Render held-out Shapes World clips, encode them, noise them to each time T, predict "
        "the clean clip in one step with its own caption (no guidance), decode and judge it. T = 0 is "
        "the VAE's round trip (the ceiling of any DiT over it).",
    )
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--times", type=float, nargs="+", default=[0.0, 0.3, 0.5, 0.7, 0.9], metavar="T",
                        help="diffusion times, each in [0, 1) (default: 0 0.3 0.5 0.7 0.9)")  # fmt: skip
    parser.add_argument("--clips", type=int, default=40, help="clips per object count (default: 40)")
    parser.add_argument("--objects", type=int, nargs="+", choices=(1, 2), default=[1], help="object counts (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (default: 0)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.set_defaults(func=run_one_step)


def run_one_step(args: argparse.Namespace) -> int:
    """Per object count and time, the share of clips passing each attribute; a table (or JSON)."""
    _check_clips_and_model(args)
    if any(not 0 <= t < 1 for t in args.times):
        raise KinetoscopeError(f"--times: each must lie in [0, 1), got {' '.join(map(str, args.times))}")
    from kinetoscope.evaluation.ceiling import reconstruction_adherence
    from kinetoscope.evaluation.one_step import one_step_roundtrip
    from kinetoscope.pipelines.text_to_video import KinetoscopePipeline

    pipe = KinetoscopePipeline.from_pretrained(args.model)
    names = {"all_correct": "all", "color": "colour", "background": "bg"}
    if not args.json:
        print(f"{args.clips} held-out clips per row; % of clips (of objects, per object attribute) passing")
        print(f"{'objects':>7}{'t':>6}" + "".join(f"{names.get(c, c):>10}" for c in _ONE_STEP_COLUMNS))
    rows = []
    for objects in args.objects:
        for t in args.times:
            shares = reconstruction_adherence(one_step_roundtrip(pipe, t, args.seed), count=args.clips, num_objects=objects)
            rows.append({"objects": objects, "t": t} | {c: shares[c] for c in _ONE_STEP_COLUMNS if c in shares})
            if not args.json:  # row by row: each takes a while
                cells = "".join(f"{100 * shares[c]:>10.0f}" if c in shares else f"{'-':>10}" for c in _ONE_STEP_COLUMNS)
                print(f"{objects:>7}{t:>6.2f}{cells}", flush=True)
    if args.json:
        print(json.dumps(rows))
    return 0


def _register_word_attention(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "word-attention",
        help="binding: how much of an object's attention goes to its own caption phrase, not the other's",
        description="Render held-out two-object Shapes World clips (both objects moving, in different "
        "directions), encode them, noise them to each time T, and follow the tokens holding each object "
        "through every attention layer: the share of their attention on their own object's noun words "
        "('a large red circle') and motion words ('moves slowly to the right') against the other "
        "object's. Own shares of 0.5 mean both phrases are read alike. Needs the word text encoder.",
    )
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--clips", type=int, default=32, help="two-object clips (default: 32)")
    parser.add_argument("--times", type=float, nargs="+", default=[0.9, 0.7, 0.5, 0.3], metavar="T",
                        help="diffusion times, each in [0, 1] (default: 0.9 0.7 0.5 0.3)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (default: 0)")
    parser.add_argument("--json", action="store_true", help="print every block's and head's row as JSON")
    parser.set_defaults(func=run_word_attention)


def run_word_attention(args: argparse.Namespace) -> int:
    """Per time, the own shares over all heads, then a row per block and head; or JSON."""
    _check_clips_and_model(args)
    if any(not 0 <= t <= 1 for t in args.times):
        raise KinetoscopeError(f"--times: each must lie in [0, 1], got {' '.join(map(str, args.times))}")
    from kinetoscope.evaluation.word_attention import binding_clips, measure_word_attention, own_share
    from kinetoscope.pipelines.text_to_video import KinetoscopePipeline

    pipe = KinetoscopePipeline.from_pretrained(args.model)
    try:
        rows = measure_word_attention(pipe, binding_clips(args.clips), args.times, seed=args.seed)
    except ValueError as error:
        raise KinetoscopeError(str(error)) from None
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{args.clips} two-object clips; each object's tokens' attention: on all text, on its own / the other's noun and motion words")
    for t in args.times:
        at = [r for r in rows if r["t"] == t]
        print(f"t = {t:.2f}: own share of noun words {own_share(at, 'noun'):.3f}, of motion words {own_share(at, 'motion'):.3f}")
        print(f"{'block':>7}{'head':>6}{'text':>8}{'noun own':>10}{'other':>8}{'motion own':>12}{'other':>8}")
        for r in at:
            print(f"{r['block']:>7}{r['head']:>6}{r['text']:>8.3f}{r['own_noun']:>10.3f}{r['other_noun']:>8.3f}"
                  f"{r['own_motion']:>12.3f}{r['other_motion']:>8.3f}")  # fmt: skip
    return 0
