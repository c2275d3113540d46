"""``kinetoscope eval``: measure how well videos follow their prompts, one sub-subcommand each.

``eval clip VIDEO --prompt TEXT`` judges one Shapes World clip with the analyzer of
``SHAPES_WORLD.md`` ("What is measured on generated clips") and prints a per-object,
per-attribute table, or the report as JSON. ``eval t2v`` and ``eval conditioning`` generate
a suite with a model and judge it; ``eval compare A.json B.json`` pairs two runs of one suite.
The diagnostics of a model's inner workings (``caption-swap``, ``one-step``) live in
:mod:`kinetoscope.cli.evaluate_diagnostics`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from kinetoscope.cli import evaluate_diagnostics
from kinetoscope.cli.generate import (
    add_guidance_arguments,
    add_model_arguments,
    add_placement_arguments,
    check_guidance_arguments,
    check_model_arguments,
    guidance_kwargs,
    load_pipeline,
)
from kinetoscope.errors import KinetoscopeError

# The longest Shapes World clip; a longer file is judged on its first frames.
_MAX_FRAMES = 64


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``eval`` and its sub-subcommands."""
    parser = subparsers.add_parser(
        "eval",
        help="measure prompt adherence of videos",
        description="Evaluation tools; see each EVAL_COMMAND's --help.",
    )
    eval_commands = parser.add_subparsers(dest="eval_command", metavar="EVAL_COMMAND")
    eval_commands.required = True
    _register_clip(eval_commands)
    _register_t2v(eval_commands)
    _register_conditioning(eval_commands)
    evaluate_diagnostics.register(eval_commands)
    _register_compare(eval_commands)


def _register_clip(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "clip",
        help="judge one Shapes World clip against a prompt",
        description="Segment a Shapes World clip by colour and check, per object the prompt asks for: "
        "presence in 90% of frames, colour, shape, size, direction, speed and a steady area; and the "
        "background (when named) and the object count. Attributes the prompt leaves open are measured "
        "but not judged. Exits 0 whenever the analysis ran, whatever the verdict.",
    )
    parser.add_argument("video", metavar="VIDEO", help="the clip: a video (mp4, gif, webm, ...) or an image")
    parser.add_argument(
        "--prompt", required=True, metavar="TEXT", help="what the clip should show, e.g. 'a red ball moving left'"
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object instead of a table")
    parser.add_argument(
        "--max-frames",
        type=int,
        default=_MAX_FRAMES,
        metavar="N",
        help=f"judge at most the first N frames (default: {_MAX_FRAMES}, the longest Shapes World clip)",
    )
    parser.set_defaults(func=run_clip)


def run_clip(args: argparse.Namespace) -> int:
    """Analyze ``args.video`` against ``args.prompt``; bad input raises KinetoscopeError (exit 2)."""
    if not args.prompt.strip():
        raise KinetoscopeError("--prompt: empty; say what the clip should show, e.g. 'a red ball moving left'")
    if args.max_frames < 1:
        raise KinetoscopeError(f"--max-frames: must be at least 1, got {args.max_frames}")
    from kinetoscope.io.video import read_video
    from kinetoscope.shapes.analyzer import analyze_clip
    from kinetoscope.shapes.prompts import parse_prompt

    query = parse_prompt(args.prompt)
    frames, _ = read_video(args.video, max_frames=args.max_frames)
    report = analyze_clip(frames, query)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print("\n".join(_table(report, query.unknown_words)))
    return 0


def _register_t2v(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "t2v",
        help="generate a fixed prompt suite and judge prompt adherence",
        description="Generate the text-to-video suite (canonical captions, paraphrases, and attribute "
        "combinations held out of the model's training) and judge every clip with the analyzer; prints "
        "per-attribute and all-correct accuracy for one-object and two-object prompts.",
    )
    add_model_arguments(parser)
    parser.add_argument("--per-group", type=int, default=24, help="prompts per (object count, kind) group (default: 24)")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    parser.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the model's)")
    add_guidance_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the suite and the noise (default: 0)")
    parser.add_argument("--json", action="store_true", help="print the summary and every row as JSON")
    parser.add_argument(
        "--misses", type=int, default=10, help="print the N most common misses per object count (default: 10; 0: none)"
    )
    add_placement_arguments(parser)
    parser.set_defaults(func=run_t2v)


def run_t2v(args: argparse.Namespace) -> int:
    """Generate and judge the suite; prints a table (or JSON)."""
    if args.per_group < 1:
        raise KinetoscopeError(f"--per-group: must be at least 1, got {args.per_group}")
    if args.misses < 0:
        raise KinetoscopeError(f"--misses: must be 0 or more, got {args.misses}")
    check_guidance_arguments(args)
    check_model_arguments(args)
    import torch

    from kinetoscope.evaluation.t2v import build_suite, run_suite

    pipe = load_pipeline(args)
    suite = build_suite(args.per_group, pipe.defaults.held_out, seed=args.seed)

    def generate(items):
        # Prompts are canonical or parse exactly; upsampling would only re-draw what they name.
        out = pipe([i.prompt for i in items], generator=torch.Generator().manual_seed(items[0].seed), **guidance_kwargs(args))
        return out.frames

    result = run_suite(generate, suite, progress=not args.json)
    kinds = {"all": None, "canonical": "canonical", "paraphrase": "paraphrase", "held-out": "held-out"}
    summary = {n: {name: result.accuracy(n, kind) for name, kind in kinds.items()} for n in (1, 2)}
    if args.json:
        by_count = {str(n): s for n, s in summary.items()}
        report = {"settings": _settings(pipe, args), "summary": by_count, "by_size_and_speed": result.by_size_and_speed(),
                  "still_objects": result.still_objects()}  # fmt: skip
        print(json.dumps(report | {"rows": result.rows}))
        return 0
    names = list(next(iter(result.rows))["attributes"]) + ["all_correct"]
    header = ["objects", "prompts", "kind", *names, "95% interval"]
    lines = [header]
    for n in (1, 2):
        for kind, acc in summary[n].items():
            if acc:
                cells = (f"{100 * acc[a]:.1f}" for a in names)
                lines.append([str(n), f"{acc['prompts']:.0f}", kind, *cells, _span(acc["all_correct_interval"])])
    print("\n".join(_aligned(lines)))
    print("all_correct's 95% interval (Wilson) is the sampling noise of a suite this size; "
          "'eval compare' pairs two runs of one suite")  # fmt: skip
    groups = result.by_size_and_speed()
    if groups:
        cells = (f"{key} {g['all_correct'] * g['prompts']:.0f}/{g['prompts']:.0f}" for key, g in groups.items())
        print("one object, all correct by asked size and speed: " + ", ".join(cells))
    still = result.still_objects()
    alone, beside = still["alone"], still["beside_a_mover"]
    if alone["objects"] or beside["objects"]:
        print(f"objects asked to stay still that moved: alone {alone['moved']} of {alone['objects']}, beside a moving object "
              f"{beside['moved']} of {beside['objects']} ({beside['toward_mover']} within 45 degrees of its asked way)")
    for n in (1, 2):
        misses = result.misses(n).most_common(args.misses)
        if misses:
            print(f"\nmost common misses, {n} object{'s' if n > 1 else ''} (asked -> measured, count):")
            rows = [[f"  {name}", f"{expected} -> {measured or 'nothing'}", str(count)] for (name, expected, measured), count in misses]
            print("\n".join(_aligned(rows)))
    return 0


def _register_conditioning(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "conditioning",
        help="generate a suite per task with given frames (image-to-video, extend, connect, edit, ...) and judge it",
        description="Cut Shapes World renders into what each task is given and what it must make, generate "
        "with the model and judge: given frames coming back (lowest PSNR; a case needs 28 dB), continuity at "
        "every seam (no object's centre moving more than 3 times its per-frame speed across it), all-correct "
        "prompt adherence of the new frames, and for edits that the asked attributes change while the "
        "trajectories stay. Tasks: image, image-to-video (the image as frame 0), image-to-video-last, extend, "
        "extend-backward, connect, edit, long (64 frames grown by extension). Prints per task the share of "
        "cases passed.",
    )
    add_model_arguments(parser)
    parser.add_argument("--per-task", type=int, default=20, help="cases per task (default: 20)")
    parser.add_argument("--tasks", default="all", help="comma-separated tasks to run (default: all)")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    parser.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the model's)")
    add_guidance_arguments(parser)
    parser.add_argument("--strength", type=float, default=None, help="edit strength in (0, 1] (default: the model's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the suite (default: 0)")
    parser.add_argument("--json", action="store_true", help="print the summary and every row as JSON")
    add_placement_arguments(parser)
    parser.set_defaults(func=run_conditioning)


def run_conditioning(args: argparse.Namespace) -> int:
    """Generate and judge the conditioning suite; prints a table (or JSON)."""
    from kinetoscope.evaluation.conditioning_suite import TASKS

    tasks = list(TASKS) if args.tasks == "all" else [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise KinetoscopeError(f"--tasks: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(TASKS)}")
    if args.per_task < 1:
        raise KinetoscopeError(f"--per-task: must be at least 1, got {args.per_task}")
    if args.strength is not None and not 0 < args.strength <= 1:
        raise KinetoscopeError(f"--strength: must be in (0, 1], got {args.strength}")
    check_guidance_arguments(args)
    check_model_arguments(args)
    from kinetoscope.evaluation.conditioning_suite import (
        build_conditioning_suite,
        pipeline_generator,
        run_conditioning_suite,
    )

    pipe = load_pipeline(args)
    suite = build_conditioning_suite(args.per_task, tasks, seed=args.seed)
    generate = pipeline_generator(pipe, args.strength, **guidance_kwargs(args))
    try:
        result = run_conditioning_suite(generate, suite, progress=not args.json)
    except ValueError as err:
        raise KinetoscopeError(str(err)) from None
    summary = result.summary()
    if args.json:
        print(json.dumps({"settings": _settings(pipe, args), "summary": summary, "rows": result.rows}))
        return 0
    columns = ("cases", "passed", "min_given_psnr", "seams", "adherent", "changed", "kept")
    lines = [["task", *columns, "passed 95%"]]
    for task, entry in summary.items():
        cells = []
        for name in columns:
            value = entry.get(name)
            if value is None:
                cells.append("-")
            elif name == "cases":
                cells.append(f"{value:.0f}")
            elif name == "min_given_psnr":
                cells.append(f"{value:.1f}")
            else:
                cells.append(f"{100 * value:.1f}")
        lines.append([task, *cells, _span(entry["passed_interval"])])
    print("\n".join(_aligned(lines)))
    print("passed, seams, adherent, changed, kept: % of cases; min_given_psnr: dB (100 = identical)")
    return 0


def _register_compare(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="pair two runs of one suite: which differences are more than noise",
        description="Read two JSON outputs of 'eval t2v --json' (or of 'eval conditioning --json') run on the "
        "same suite (same size and --seed), e.g. two models or two sampler settings, and print per group "
        "(one-object and two-object prompts, or each task) both pass rates with 95% intervals, the prompts "
        "only one run passed, and McNemar's exact p-value: below 0.05, the difference is unlikely to be noise.",
    )
    parser.add_argument("a", type=Path, metavar="A.json", help="the first run's JSON")
    parser.add_argument("b", type=Path, metavar="B.json", help="the second run's JSON")
    parser.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    """Print the paired comparison of two suite runs; unreadable or mismatched runs exit 2."""
    from kinetoscope.evaluation.compare import compare_runs, load_rows

    groups = compare_runs(load_rows(args.a), load_rows(args.b))
    lines = [["group", "items", "A passed", "A 95%", "B passed", "B 95%", "only A", "only B", "p (McNemar)"]]
    for g in groups:
        c = g.comparison
        rate = lambda passed: f"{passed} ({100 * passed / c.items:.1f}%)"  # noqa: E731
        lines.append([g.group, str(c.items), rate(c.both + c.only_a), _span(g.interval_a), rate(c.both + c.only_b),
                      _span(g.interval_b), str(c.only_a), str(c.only_b), f"{c.p_value:.3f}"])  # fmt: skip
    print("\n".join(_aligned(lines)))
    return 0


def _settings(pipe, args: argparse.Namespace) -> dict:
    """What a suite was generated with, the model's defaults filled in: a JSON report says how it was made."""
    resolved = pipe.defaults.resolve(**guidance_kwargs(args))  # shift None: by the token count
    names = {"num_inference_steps": "steps", "guidance_scale": "guidance"}  # the report's names: the options'
    settings = {"model": str(args.model) if args.model is not None else "shipped", "seed": args.seed}
    settings |= {names.get(name, name): value for name, value in resolved.items()}
    settings |= {"device": str(pipe.device), "dtype": str(pipe.dtype).removeprefix("torch.")}
    if args.lora is not None:
        settings |= {"lora": str(args.lora), "lora_scale": args.lora_scale}
    if hasattr(args, "strength"):  # eval conditioning's edits
        settings |= {"strength": pipe.defaults.resolve(edit_strength=args.strength)["edit_strength"]}
    return settings


def _span(interval: tuple[float, float]) -> str:
    """A rate interval in percent, e.g. ``22-43``."""
    return f"{100 * interval[0]:.0f}-{100 * interval[1]:.0f}"


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows of cells as lines, each column padded to its widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]


def _table(report, unknown_words: tuple[str, ...]) -> list[str]:
    """The report as text: a column-aligned table, clip rows first, then one block per object."""
    entries: list[str | tuple[str, ...]] = [("attribute", "expected", "measured", "value", "ok", "note")]
    entries += [_row(result) for result in (report.background, report.count) if result is not None]
    for obj in report.objects:
        seen = report.detected[obj.detected] if obj.detected is not None else None
        label = f"{seen['color']} {seen['shape']}" if seen else "nothing matched"
        entries.append(f"object {obj.index + 1} ({label}): {'ok' if obj.ok else 'WRONG'}")
        entries += [("  " + a.name, *_row(a)[1:]) for a in obj.attributes]
    aligned = iter(_aligned([e for e in entries if isinstance(e, tuple)]))
    lines = [e if isinstance(e, str) else next(aligned) for e in entries]
    if unknown_words:
        lines.append(f"words not understood in the prompt: {' '.join(unknown_words)}")
    lines.append(f"all correct: {'yes' if report.all_correct else 'no'}")
    return lines


def _row(result) -> tuple[str, ...]:
    if result.value is None:
        value = ""
    else:
        value = f"{result.value:.0f}" if result.name == "count" else f"{result.value:.3f}"
    expected = "(any)" if result.expected is None else result.expected
    return (result.name, expected, result.measured or "-", value, "yes" if result.ok else "NO", result.note)
