"""Every subcommand's --help renders, reads as written, and the top-level command behaves."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from kinetoscope import __version__
from kinetoscope.cli.main import build_parser

KINETOSCOPE = Path(sys.executable).parent / "kinetoscope"


def _all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                found += _all_parsers(sub)
    return found


def test_every_help_text_renders_without_format_escapes() -> None:
    parsers = _all_parsers(build_parser())
    assert len(parsers) > 20  # generate, train vae, data curate, eval compare, ...
    for parser in parsers:
        text = parser.format_help()  # argparse %-formats help strings: a stray % would raise here
        # Descriptions are printed as written, help strings after %-formatting: "%%" is right in
        # the one and a visible typo in the other.
        assert "%%" not in text, parser.prog
        assert parser.description or parser.prog == "kinetoscope", f"{parser.prog}: no description"


def test_version_and_a_missing_command() -> None:
    version = subprocess.run([str(KINETOSCOPE), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == f"kinetoscope {__version__}"
    bare = subprocess.run([str(KINETOSCOPE)], capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2 and bare.stderr.count("\n") == 1 and "COMMAND" in bare.stderr
