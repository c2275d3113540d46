"""``kinetoscope caption``: prompt upsampling, free text to the Shapes World's canonical caption."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from kinetoscope.errors import KinetoscopeError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``caption``."""
    parser = subparsers.add_parser(
        "caption",
        help="upsample a free-text prompt into the canonical caption",
        description="Parse a free-text prompt into Shapes World attributes, sample the ones it leaves "
        "open, and print the canonical caption the model was trained on. Words the parser does not "
        "understand are kept after the caption and listed on stderr.",
    )
    parser.add_argument(
        "text", nargs="+", metavar="TEXT", help="the prompt, e.g. 'red ball going left fast' (words are joined)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for the attributes the prompt leaves open (default: 0)"
    )
    parser.add_argument("--json", action="store_true", help="print the parsed query and the caption as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the upsampled caption (or JSON); unknown words go to one note line on stderr."""
    # Imported here so that `kinetoscope --help` does not pay for the vocabulary tables.
    from kinetoscope.shapes.prompts import parse_prompt, upsample_prompt

    text = " ".join(args.text)
    if not text.strip():
        raise KinetoscopeError("TEXT: the prompt is empty")
    if args.seed < 0:
        raise KinetoscopeError(f"--seed: must be 0 or more, got {args.seed}")
    query = parse_prompt(text)
    try:
        caption = upsample_prompt(text, seed=args.seed)
    except ValueError as err:  # a query the world cannot hold, e.g. two red objects
        raise KinetoscopeError(f"TEXT: {text!r} {err}") from None
    if args.json:
        print(json.dumps({"query": asdict(query), "caption": caption}, indent=2))
    else:
        print(caption)
    if query.unknown_words:
        words = ", ".join(query.unknown_words)
        sys.stderr.write(f"kinetoscope: note: words not understood (kept after the caption): {words}\n")
    return 0
