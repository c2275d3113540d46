"""``kinetoscope data``: data tools, one sub-subcommand each (``data shapes`` renders a Shapes World set;
``curate``, ``merge``, ``filter`` and ``cache-latents`` live in :mod:`kinetoscope.cli.curate`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kinetoscope.cli import curate
from kinetoscope.errors import KinetoscopeError

_MAX_WORKERS = 64


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data`` and its sub-subcommands."""
    parser = subparsers.add_parser(
        "data", help="make and prepare training data", description="Data tools; see each DATA_COMMAND's --help."
    )
    data_commands = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data_commands.required = True
    _register_shapes(data_commands)
    curate.register(data_commands)


def _register_shapes(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "shapes",
        help="render a Shapes World set with metadata.csv",
        description="Render Shapes World clips into DIR/clips/ and their ground truth and captions into "
        "DIR/metadata.csv. Comma lists mix values: each clip picks one of each from its own seed.",
    )
    add = parser.add_argument
    add("--out", type=Path, required=True, metavar="DIR", help="folder to write clips/ and metadata.csv into")
    add("--num", type=int, default=64, metavar="N", help="number of clips (default: 64)")
    add("--height", type=int, metavar="H", help="frame height, a multiple of 8 in 32..256 (default: 64)")
    add("--width", type=int, metavar="W", help="frame width, a multiple of 8 in 32..256 (default: 64)")
    add("--sizes", metavar="HxW[,HxW...]", help="mix of frame sizes instead of --height/--width, e.g. 64x64,64x112")
    add("--num-frames", default="16", metavar="T[,T...]", help="frames per clip, 1..64, or a list (default: 16)")
    add("--objects", default="1,2", metavar="K[,K...]", help="objects per clip, a list of 1 and 2 (default: 1,2)")
    add("--seed", type=int, default=0, metavar="S", help="set seed; clip i's seed derives from (S, i) (default: 0)")
    add("--workers", type=int, default=1, metavar="K", help="processes rendering in parallel (default: 1)")
    add("--format", choices=("mp4", "gif"), default="mp4", help="clip files; one-frame clips are .png (default: mp4)")
    add("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_shapes)


def _int_list(flag: str, text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(item) for item in text.split(","))
    except ValueError:
        raise KinetoscopeError(f"{flag}: {text!r} is not a comma-separated list of integers") from None
    return values


def _parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    sizes = []
    for item in text.split(","):
        height, sep, width = item.strip().lower().partition("x")
        if not sep or not height.isdigit() or not width.isdigit():
            raise KinetoscopeError(f"--sizes: {item!r} is not HEIGHTxWIDTH, e.g. 64x112")
        sizes.append((int(height), int(width)))
    return tuple(sizes)


def _canvas_sizes(args: argparse.Namespace) -> tuple[tuple[int, int], ...]:
    """The size list from --sizes or from --height/--width, which exclude each other."""
    from kinetoscope.shapes import spec

    # validate_canvas names the bad side ("width 60 must be ..."), which doubles as the flag name.
    if args.sizes is not None:
        if args.height is not None or args.width is not None:
            raise KinetoscopeError("--sizes: give either --sizes or --height/--width, not both")
        sizes = _parse_sizes(args.sizes)
        flag = "--sizes"
    else:
        height = spec.DEFAULT_HEIGHT if args.height is None else args.height
        sizes = ((height, spec.DEFAULT_WIDTH if args.width is None else args.width),)
        flag = None
    for height, width in sizes:
        try:
            spec.validate_canvas(height, width, spec.DEFAULT_NUM_FRAMES)
        except ValueError as err:
            raise KinetoscopeError(f"{flag}: {height}x{width}: {err}" if flag else f"--{err}") from None
    return sizes


def run_shapes(args: argparse.Namespace) -> int:
    """Validate the flags, render the set, say where it went."""
    from kinetoscope.shapes import spec
    from kinetoscope.shapes.dataset import CLIPS_DIR, ShapesSetConfig, write_shapes_set

    if args.num < 1:
        raise KinetoscopeError(f"--num: {args.num} must be at least 1")
    if args.seed < 0:
        raise KinetoscopeError(f"--seed: {args.seed} must be 0 or more")
    if not 1 <= args.workers <= _MAX_WORKERS:
        raise KinetoscopeError(f"--workers: {args.workers} must be from 1 to {_MAX_WORKERS}")
    sizes = _canvas_sizes(args)
    num_frames = _int_list("--num-frames", args.num_frames)
    for frames in num_frames:
        if not 1 <= frames <= spec.MAX_FRAMES:
            raise KinetoscopeError(f"--num-frames: {frames} must be from 1 to {spec.MAX_FRAMES}")
    objects = _int_list("--objects", args.objects)
    for count in objects:
        if count not in (1, 2):
            raise KinetoscopeError(f"--objects: {count} must be 1 or 2")
    if args.out.exists() and not args.out.is_dir():
        raise KinetoscopeError(f"--out: {args.out} exists and is not a folder")
    config = ShapesSetConfig(
        num=args.num, sizes=sizes, num_frames=num_frames, objects=objects, seed=args.seed, format=args.format
    )
    try:
        metadata = write_shapes_set(config, args.out, workers=args.workers, progress=not args.quiet)
    except OSError as err:
        raise KinetoscopeError(f"--out: cannot write to {args.out} ({err.strerror or err})") from None
    print(f"wrote {config.num} clips to {args.out / CLIPS_DIR}/")
    print(f"wrote {metadata}")
    return 0
