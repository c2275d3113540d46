"""Entry point of the ``kinetoscope`` console script.

Each subcommand lives in its own module with a ``register(subparsers)`` function that adds its
parser and sets ``func``; heavy imports (torch, av) happen inside the handlers so that
``kinetoscope --help`` and ``kinetoscope caption`` start fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kinetoscope import __version__
from kinetoscope.errors import KinetoscopeError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    # Imported here, not at module top, so a broken optional subcommand cannot break --version.
    from kinetoscope.cli import commands

    parser = _Parser(prog="kinetoscope", description="Sora-style video generation on spacetime patches.")
    parser.add_argument("--version", action="version", version=f"kinetoscope {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for register in commands.REGISTRY:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except KinetoscopeError as err:
        sys.stderr.write(f"kinetoscope: error: {err}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("kinetoscope: interrupted\n")
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
