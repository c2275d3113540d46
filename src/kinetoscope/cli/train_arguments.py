"""Argument types shared by the ``train`` subcommands: patch sizes, attribute lists, mask mixes, precision.

Each turns one flag's text into a value or fails with a one-line message (argparse exits 2 with
it), and none imports torch, so building the parser stays quick.
"""

from __future__ import annotations

import argparse

from kinetoscope.shapes.swaps import EXCHANGEABLE


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    """``--precision``, shared with ``train vae`` (training.run.PRECISIONS; spelt out here so that
    building the parser does not import torch)."""
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                        help="mixed precision: auto is bf16 autocast on CUDA and float32 on a CPU; bf16 on a CPU too "
                        "(faster on CPUs with AMX, e.g. 2.1x for a VAE step and 1.3x for a DiT step on the dev machine; "
                        "much slower without); fp32 everywhere (default: auto)")  # fmt: skip


def patch_size(text: str) -> tuple[int, int, int]:
    """'1,2,2' -> (1, 2, 2) for argparse (a bad value exits 2 with argparse's one-line message)."""
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        sizes = ()
    if len(sizes) != 3 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected three positive integers PT,PH,PW, e.g. 1,2,2")
    return sizes  # type: ignore[return-value]


def attribute_list(text: str) -> tuple[str, ...]:
    """'direction,speed' -> ('direction', 'speed') for argparse, each one of EXCHANGEABLE."""
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [v for v in names if v not in EXCHANGEABLE]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: expected some of {','.join(EXCHANGEABLE)}, comma-separated")
    return names


def parse_mask_mix(text: str) -> dict[str, float]:
    """'suffix=0.12,last=0.08' -> {'suffix': 0.12, 'last': 0.08}; a ValueError names what is wrong."""
    from kinetoscope.training.frame_masks import KINDS

    mix = {}
    for item in text.split(","):
        kind, _, weight = item.strip().partition("=")
        if kind not in KINDS:
            raise ValueError(f"--masks: unknown mask kind {kind!r}; expected one of {', '.join(KINDS)}")
        try:
            mix[kind] = float(weight)
        except ValueError:
            raise ValueError(f"--masks {item!r}: the weight must be a number") from None
        if not mix[kind] >= 0:
            raise ValueError(f"--masks {item!r}: the weight must be 0 or more")
    return mix
