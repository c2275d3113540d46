"""``kinetoscope demo``: the README's main job.

With a text-to-video model (the shipped one, or ``--model DIR``) it generates a few videos from
terse prompts, judges each with the Shapes World analyzer against its upsampled caption, and
writes the videos, ``prompts.csv`` and a contact sheet. Without one it renders a small Shapes
World sample set that shows what the model is trained on and judged against (square, 16:9 and
9:16 canvases; one and two objects; a still object), with ``metadata.csv`` and a contact sheet.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from kinetoscope.cli.generate import add_placement_arguments, load_pipeline

# Terse prompts, as people write them: the upsampler fills in what they leave open.
_PROMPTS = (
    "a red ball rolling right",
    "small blue box going up fast on white",
    "a green triangle sitting still on grey",
    "yellow circle heading down-left quickly",
    "a big purple square moving slowly to the left on black",
    "an orange dot and a blue triangle",
)

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
        help="the main job: generate videos from prompts and a contact sheet",
        description="Generate a few videos from terse prompts with the shipped model (or --model), judge each "
        "with the Shapes World analyzer, and write DIR/videos/, prompts.csv and contact_sheet.png. Without a "
        "model (or with --reference) render a small Shapes World sample set (square, 16:9 and 9:16 canvases; one "
        "and two objects; a still object) into DIR with metadata.csv and contact_sheet.png.",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("out/demo"), metavar="DIR", help="folder to write into (default: out/demo)"
    )
    parser.add_argument(
        "--model", type=Path, default=None, metavar="DIR",
        help="text-to-video model folder (default: the shipped one; without any, render the Shapes World)",
    )
    parser.add_argument(
        "--reference", action="store_true", help="render the Shapes World reference set even when a model is there"
    )
    add_placement_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate from prompts when a model is there, else render the Shapes World samples."""
    from kinetoscope.errors import KinetoscopeError
    from kinetoscope.pipelines.text_to_video import MODEL_INDEX, default_model_dir

    if args.out.exists() and not args.out.is_dir():
        raise KinetoscopeError(f"--out: {args.out} exists and is not a folder")
    if args.model is not None and not (args.model / MODEL_INDEX).is_file():
        raise KinetoscopeError(f"--model {args.model}: not a kinetoscope model folder (no {MODEL_INDEX})")
    if not args.reference and (args.model is not None or (default_model_dir() / MODEL_INDEX).is_file()):
        return _generate(args)
    return _render(args)


def _generate(args: argparse.Namespace) -> int:
    """Generate one video per prompt, judge it, write videos, prompts.csv and contact_sheet.png."""
    from kinetoscope.errors import KinetoscopeError
    from kinetoscope.io.atomic import atomic_output
    from kinetoscope.io.contact_sheet import contact_sheet
    from kinetoscope.io.video import write_video
    from kinetoscope.shapes.analyzer import analyze_clip
    from kinetoscope.shapes.prompts import parse_prompt

    start = time.perf_counter()
    pipe = load_pipeline(args)
    fps = 8  # the Shapes World's frame rate
    videos, rows = [], []
    try:
        for index, prompt in enumerate(_PROMPTS):
            out = pipe(prompt, seed=index)
            frames, caption = out.frames[0], out.prompts[0]
            verdict = analyze_clip(frames, parse_prompt(caption))
            path = write_video(args.out / "videos" / f"{index:02d}.mp4", frames, fps)
            misses = "; ".join(f"{m['attribute']} {m['expected']} -> {m['measured'] or 'nothing'}" for m in verdict.misses())
            rows.append({"path": str(path.relative_to(args.out)), "prompt": prompt, "caption": caption,
                         "analyzer_all_correct": verdict.all_correct, "analyzer_misses": misses})  # fmt: skip
            videos.append(frames)
            mark = "ok" if verdict.all_correct else f"missed: {misses}"
            print(f"  {index + 1}. {prompt!r} -> {caption!r} [{mark}]")
        with atomic_output(args.out / "prompts.csv") as temporary, open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        labels = [f"{i + 1}. {r['prompt']} -> {r['caption']}" for i, r in enumerate(rows)]
        sheet_path = write_video(args.out / "contact_sheet.png", contact_sheet(videos, labels), fps)
    except OSError as err:
        raise KinetoscopeError(f"--out: cannot write to {args.out} ({err.strerror or err})") from None
    correct = sum(r["analyzer_all_correct"] for r in rows)
    print(f"kinetoscope demo: {len(rows)} videos generated, {correct} judged all-correct by the analyzer")
    for what, where in (("videos", f"{args.out / 'videos'}/"), ("prompts", args.out / "prompts.csv"), ("contact sheet", sheet_path)):
        print(f"  {what + ':':<15} {where}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def _render(args: argparse.Namespace) -> int:
    """Render the samples, write clips, metadata.csv and contact_sheet.png, and say where they went."""
    from kinetoscope.errors import KinetoscopeError
    from kinetoscope.io.contact_sheet import contact_sheet
    from kinetoscope.io.video import write_video
    from kinetoscope.shapes.dataset import CLIPS_DIR, METADATA, clip_filename, write_clip, write_metadata
    from kinetoscope.shapes.render import render_clip
    from kinetoscope.shapes.spec import ObjectSpec, SceneSpec

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

    print("kinetoscope demo: the Shapes World reference set, what the model learns from and is judged against.")
    for what, where in (
        (f"{len(clips)} clips", f"{args.out / CLIPS_DIR}/"),
        ("metadata", args.out / METADATA),
        ("contact sheet", sheet_path),
    ):
        print(f"  {what + ':':<15} {where}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
