"""``kinetoscope data curate | merge | filter | cache-latents``: raw video to training data.

``curate`` turns a folder (or CSV) of videos into scored, captioned clips and ``metadata.csv``;
``merge`` joins the tables of ``--shard K/N`` runs; ``filter`` keeps clips by score; and
``cache-latents`` encodes a table's clips through the VAE for ``train dit --data``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kinetoscope.errors import KinetoscopeError

_MAX_WORKERS = 64


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the four commands to the ``data`` group."""
    _register_curate(subparsers)
    _register_merge(subparsers)
    _register_filter(subparsers)
    _register_cache(subparsers)


def _register_curate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "curate",
        help="cut a folder of videos into scored, captioned clips with metadata.csv",
        description="Probe every video under IN (a folder, searched recursively, or a CSV of paths), split it "
        "into scenes, cut clips, score them (motion, sharpness, exposure, blockiness, black and solid frames, "
        "letterboxing, near-duplicates), caption them from sidecar .txt/.json/.srt files or a local model, and "
        "write OUT/clips/ with OUT/metadata.csv, OUT/sources.csv and OUT/rejected.csv. A rerun skips finished "
        "files; a bad file is listed in rejected.csv with the reason and never stops the run. "
        "Needs the curate extra: pip install 'kinetoscope[curate]'.",
    )
    add = parser.add_argument
    add("input", type=Path, metavar="IN", help="folder of videos, or a CSV whose 'path' column lists them")
    add("-o", "--out", type=Path, required=True, metavar="OUT", help="folder for clips/ and the tables")
    add("--min-seconds", type=float, default=1.0, help="shortest clip; shorter scenes are left out (default: 1)")
    add("--max-seconds", type=float, default=10.0, help="longest clip; longer scenes are cut in several (default: 10)")
    add("--scene-threshold", type=float, default=27.0, help="PySceneDetect ContentDetector threshold (default: 27)")
    add("--min-scene-seconds", type=float, default=0.5, help="shortest scene between two cuts (default: 0.5)")
    add("--short-side", type=int, default=0, metavar="PX", help="scale clips to this short side; 0 keeps the size (default: 0)")
    add("--crf", type=int, default=18, help="H.264 quality of the clips, 0-51, lower is better (default: 18)")
    add("--static-motion", type=float, default=1.0, help="flag clips moving less, in %% of the short side per second (default: 1)")
    add("--chaotic-motion", type=float, default=300.0, help="flag clips moving more (default: 300)")
    add("--dedup-distance", type=int, default=4, help="bits (of 64) within which hashes mark near-duplicates (default: 4)")
    add("--no-sidecars", action="store_true", help="ignore .txt/.json/.srt caption files beside the videos")
    add("--captioner", metavar="DIR", help="captions clips without a sidecar: a local transformers image-to-text "
        "model folder, or module:Class of your own (a caption(frames) method)")
    add("--caption-prompt", metavar="TEXT", help="prompt given to the captioner with each clip (default: none)")
    add("--aesthetic-model", metavar="FILE", help="TorchScript model (or module:Class with score(frames)) "
        "filling the 'aesthetic' column")
    add("--text-model", metavar="FILE", help="the same for the 'text_overlay' column (text on screen)")
    add("--workers", type=int, default=1, metavar="K", help="processes working in parallel (default: 1)")
    add("--shard", metavar="K/N", help="do only shard K of N (e.g. 3/8); merge the shards with 'data merge'")
    add("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_curate)


def run_curate(args: argparse.Namespace) -> int:
    """Validate, curate, report."""
    from kinetoscope.data.curate import deps

    deps.require()
    from kinetoscope.data.curate.config import CurateConfig
    from kinetoscope.data.curate.inputs import VIDEO_SUFFIXES, list_sources, parse_shard
    from kinetoscope.data.curate.plugins import is_import_spec
    from kinetoscope.data.curate.runner import curate

    if not args.input.exists():
        raise KinetoscopeError(f"IN {args.input}: no such folder or CSV file")
    if args.out.exists() and not args.out.is_dir():
        raise KinetoscopeError(f"--out {args.out}: exists and is not a folder")
    if not 1 <= args.workers <= _MAX_WORKERS:
        raise KinetoscopeError(f"--workers: {args.workers} must be from 1 to {_MAX_WORKERS}")
    shard = parse_shard(args.shard) if args.shard else None
    for flag, value, want_dir in (("--captioner", args.captioner, True), ("--aesthetic-model", args.aesthetic_model, False),
                                  ("--text-model", args.text_model, False)):  # fmt: skip
        if value and not is_import_spec(value) and not (Path(value).is_dir() if want_dir else Path(value).is_file()):
            raise KinetoscopeError(f"{flag} {value}: no such {'folder' if want_dir else 'file'}")
    try:
        config = CurateConfig(
            min_seconds=args.min_seconds, max_seconds=args.max_seconds, scene_threshold=args.scene_threshold,
            min_scene_seconds=args.min_scene_seconds, short_side=args.short_side, crf=args.crf,
            static_motion=args.static_motion, chaotic_motion=args.chaotic_motion, dedup_distance=args.dedup_distance,
            sidecars=not args.no_sidecars, captioner=args.captioner, caption_prompt=args.caption_prompt,
            aesthetic_model=args.aesthetic_model, text_model=args.text_model,
        )  # fmt: skip
    except ValueError as err:
        raise KinetoscopeError(f"data curate: {err}") from None
    sources = list_sources(args.input, exclude=args.out)
    # An empty shard is not an error: it still writes its (empty) tables for the merge.
    if not sources:
        raise KinetoscopeError(f"IN {args.input}: no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
    try:
        summary = curate(sources, args.out, config, workers=args.workers, shard=shard, progress=not args.quiet)
    except OSError as err:
        raise KinetoscopeError(f"--out {args.out}: cannot write there ({err.strerror or err})") from None
    kept = summary.inputs - summary.rejected
    print(f"{summary.inputs} inputs: {summary.clips} clips from {kept} files, {summary.rejected} rejected "
          f"({summary.skipped} already done)")  # fmt: skip
    for path in summary.tables.values():
        print(f"wrote {path}")
    if shard:
        print(f"when all {shard[1]} shards are done: kinetoscope data merge {args.out}")
    return 0


def _register_merge(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "merge",
        help="merge the tables of 'data curate --shard K/N' runs",
        description="Join the metadata-K-of-N.csv, sources-K-of-N.csv and rejected-K-of-N.csv tables found in "
        "the DIRs (all N shards must be there) into OUT/metadata.csv, sources.csv and rejected.csv, marking "
        "near-duplicates across all shards. Clips stay where they are; paths are rewritten relative to OUT.",
    )
    parser.add_argument("dirs", type=Path, nargs="+", metavar="DIR", help="folders holding shard tables")
    parser.add_argument("-o", "--out", type=Path, metavar="OUT", help="folder for the merged tables (default: the first DIR)")
    parser.add_argument("--dedup-distance", type=int, default=4, help="bits within which hashes match (default: 4)")
    parser.set_defaults(func=run_merge)


def run_merge(args: argparse.Namespace) -> int:
    from kinetoscope.data.curate.shards import merge_shards

    if not 0 <= args.dedup_distance <= 15:
        raise KinetoscopeError(f"--dedup-distance: {args.dedup_distance} must be from 0 to 15")
    out = args.out or args.dirs[0]
    if out.exists() and not out.is_dir():
        raise KinetoscopeError(f"--out {out}: exists and is not a folder")
    for path in merge_shards(args.dirs, out, args.dedup_distance).values():
        print(f"wrote {path}")
    return 0


def _register_filter(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "filter",
        help="keep the clips of a metadata.csv whose scores pass thresholds",
        description="Write the rows of METADATA that pass every threshold to OUT (paths rewritten relative to "
        "OUT's folder) and say how many each criterion removed. A row without a value in a thresholded "
        "column fails it.",
    )
    add = parser.add_argument
    add("metadata", type=Path, metavar="METADATA", help="a metadata.csv from 'data curate'")
    add("-o", "--out", type=Path, required=True, metavar="OUT", help="the filtered table (a .csv file)")
    add("--min", action="append", default=[], metavar="COLUMN=VALUE", help="keep rows with COLUMN >= VALUE (repeatable)")
    add("--max", action="append", default=[], metavar="COLUMN=VALUE", help="keep rows with COLUMN <= VALUE (repeatable)")
    add("--no-duplicates", action="store_true", help="drop clips marked as near-duplicates (dup_of)")
    add("--no-static", action="store_true", help="drop clips flagged static")
    add("--no-chaotic", action="store_true", help="drop clips flagged chaotic")
    add("--require-text", action="store_true", help="drop clips without a caption")
    parser.set_defaults(func=run_filter)


def _thresholds(flag: str, items: list[str]) -> dict[str, float]:
    thresholds = {}
    for item in items:
        column, sep, value = item.partition("=")
        try:
            thresholds[column.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not column.strip():
            raise KinetoscopeError(f"{flag}: {item!r} is not COLUMN=NUMBER, e.g. motion=2")
    return thresholds


def run_filter(args: argparse.Namespace) -> int:
    from kinetoscope.data.curate.filters import ClipFilter, apply_filter
    from kinetoscope.data.curate.table import read_metadata, write_metadata

    if not args.metadata.is_file():
        raise KinetoscopeError(f"METADATA {args.metadata}: no such file")
    if args.out.suffix.lower() != ".csv":
        raise KinetoscopeError(f"--out {args.out}: name a .csv file")
    clip_filter = ClipFilter(
        minimum=_thresholds("--min", args.min), maximum=_thresholds("--max", args.max),
        no_duplicates=args.no_duplicates, no_static=args.no_static, no_chaotic=args.no_chaotic,
        require_text=args.require_text,
    )  # fmt: skip
    rows = read_metadata(args.metadata)
    kept, counts = apply_filter(rows, clip_filter)
    write_metadata(kept, args.out)
    removed = ", ".join(f"{name}: {count}" for name, count in sorted(counts.items())) or "none"
    print(f"kept {len(kept)} of {len(rows)} clips (failed per criterion: {removed})")
    print(f"wrote {args.out}")
    return 0


def _register_cache(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cache-latents",
        help="encode a metadata.csv's clips through the VAE for 'train dit --data'",
        description="Cut every clip of METADATA to a training bucket (1+4k frames, about RESOLUTION^2 pixels at "
        "the nearest common aspect ratio, resized and centre-cropped), encode it through the VAE and write "
        "safetensors shards with the captions into CACHE. Resumes: shards already written are kept. Train on "
        "it with 'kinetoscope train dit --data CACHE'.",
    )
    add = parser.add_argument
    add("metadata", type=Path, metavar="METADATA", help="a metadata.csv (curated, perhaps filtered)")
    add("-o", "--out", type=Path, required=True, metavar="CACHE", help="folder for the latent shards")
    add("--vae", type=Path, default=None, metavar="DIR", help="VAE folder (default: the shipped VAE)")
    add("--num-frames", type=int, default=17, help="most frames per clip; used as 1+4k (default: 17)")
    add("--resolution", type=int, default=64, help="buckets hold about RESOLUTION^2 pixels (default: 64)")
    add("--stride", type=int, default=1, help="take every STRIDE-th frame (default: 1)")
    add("--shard-size", type=int, default=256, help="clips per shard (default: 256)")
    add("--batch-size", type=int, default=8, help="clips encoded at once (default: 8)")
    add("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda, ... (default: auto)")
    add("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_cache)


def run_cache(args: argparse.Namespace) -> int:
    from kinetoscope.data.curate.latents import ClipLatentsConfig, cache_clip_latents
    from kinetoscope.data.curate.table import read_metadata

    if not args.metadata.is_file():
        raise KinetoscopeError(f"METADATA {args.metadata}: no such file")
    if args.out.exists() and not args.out.is_dir():
        raise KinetoscopeError(f"--out {args.out}: exists and is not a folder")
    try:
        config = ClipLatentsConfig(
            num_frames=args.num_frames, resolution=args.resolution, stride=args.stride,
            shard_size=args.shard_size, batch_size=args.batch_size,
        )  # fmt: skip
    except ValueError as err:
        raise KinetoscopeError(f"data cache-latents: {err}") from None
    rows = read_metadata(args.metadata)
    if not rows:
        raise KinetoscopeError(f"METADATA {args.metadata}: lists no clips")

    from kinetoscope.pipelines.text_to_video import default_model_dir
    from kinetoscope.training.run import resolve_device
    from kinetoscope.vae.model import CausalVideoVAE

    vae = CausalVideoVAE.from_pretrained(args.vae or default_model_dir() / "vae", device=resolve_device(args.device))
    paths = cache_clip_latents(rows, vae.eval(), args.out, config, progress=not args.quiet)
    print(f"{len(rows)} clips in {len(paths)} shards in {args.out}; train with: kinetoscope train dit --data {args.out}")
    return 0
