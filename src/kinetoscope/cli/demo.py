"""``kinetoscope demo``: the README's main job.

Until a trained model ships, it renders a small Shapes World sample set that shows what the
model is trained on and judged against (square, 16:9 and 9:16 canvases; one and two objects;
a still object), with ``metadata.csv`` and a contact sheet to look at.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

# (seed, height, width, frames, background, objects as (colour, shape, size, direction, speed)).
# Seeds place the objects so that each moves its named way for at least the first 15 frames
# before any bounce, and the two objects of a pair stay apart: the first frames read as the caption.
_SAMPLES = (
    (1, 64, 64, 24, "black", [("red", "circle", "large", "right", "slowly")]),
    (65, 64, 64, 24, "gray", [("blue", "triangle", "small", "still", "slowly"),
                              ("yellow", "square", "large", "down-left", "quickly")]),
    (10, 64, 112, 24, "white", [("green", "triangle", "large", "up-right", "quickly")]),
    (0, 112, 64, 24, "black", [("purple", "square", "small", "down", "slowly")]),
    (2, 64, 112, 24, "gray", [("orange", "circle", "small", "left", "quickly"),
                              ("blue", "square", "large", "up", "slowly")]),
    (13, 112, 64, 24, "white", [("yellow", "triangle", "large", "down-right", "quickly"),
                                ("green", "circle", "small", "up-left", "slowly")]),
    (0, 64, 64, 24, "white", [("purple", "triangle", "large", "still", "slowly")]),
    (212, 64, 64, 32, "black", [("orange", "square", "large", "left", "quickly"),
                                ("red", "circle", "small", "up", "quickly")]),
)  # fmt: skip


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="the main job: render a Shapes World sample set and a contact sheet",
        description="Until a trained model ships, render a small Shapes World sample set (square, 16:9 and "
        "9:16 canvases; one and two objects; a still object) into DIR with metadata.csv and contact_sheet.png.",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("out/demo"), metavar="DIR", help="folder to write into (default: out/demo)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Render the samples, write clips, metadata.csv and contact_sheet.png, and say where they went."""
    from kinetoscope.errors import KinetoscopeError
    from kinetoscope.io.contact_sheet import contact_sheet
    from kinetoscope.io.video import write_video
    from kinetoscope.shapes.dataset import CLIPS_DIR, METADATA, clip_filename, write_clip, write_metadata
    from kinetoscope.shapes.render import render_clip
    from kinetoscope.shapes.spec import ObjectSpec, SceneSpec

    if args.out.exists() and not args.out.is_dir():
        raise KinetoscopeError(f"--out: {args.out} exists and is not a folder")
    start = time.perf_counter()
    clips, rows = [], []
    try:
        for index, (seed, height, width, frames, background, objects) in enumerate(_SAMPLES):
            scene = SceneSpec(background, tuple(ObjectSpec(*o) for o in objects))
            clip = render_clip(scene, height=height, width=width, num_frames=frames, seed=seed)
            rows.append(write_clip(clip, args.out, clip_filename(index, frames, "mp4"), seed))
            clips.append(clip)
        write_metadata(rows, args.out / METADATA)
        sheet = contact_sheet([c.frames for c in clips], [f"{i + 1}. {c.caption}" for i, c in enumerate(clips)])
        sheet_path = write_video(args.out / "contact_sheet.png", sheet, clips[0].fps)
    except OSError as err:
        raise KinetoscopeError(f"--out: cannot write to {args.out} ({err.strerror or err})") from None

    print("kinetoscope demo: no trained model ships yet, so this renders the Shapes World it will learn.")
    for what, where in (
        (f"{len(clips)} clips", f"{args.out / CLIPS_DIR}/"),
        ("metadata", args.out / METADATA),
        ("contact sheet", sheet_path),
    ):
        print(f"  {what + ':':<15} {where}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
