"""Checks on an input path before any decoder sees it, and short reasons for error lines."""

from __future__ import annotations

from pathlib import Path

from kinetoscope.errors import KinetoscopeError


def describe_error(err: BaseException) -> str:
    """A short reason from an OS, FFmpeg or Pillow error, without the repeated file name."""
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


def check_input_file(path: Path) -> None:
    """Raise KinetoscopeError unless ``path`` is a readable, non-empty regular file.

    Decoders given a directory fail obscurely and given a FIFO or device they can block
    forever, so only regular files go through.
    """
    if not path.exists():
        raise KinetoscopeError(f"{path}: no such file")
    if path.is_dir():
        raise KinetoscopeError(f"{path}: is a directory, not a video or image file")
    if not path.is_file():
        raise KinetoscopeError(f"{path}: not a regular file")
    try:
        with open(path, "rb") as handle:
            first_byte = handle.read(1)
    except OSError as err:
        raise KinetoscopeError(f"{path}: cannot read it ({describe_error(err)})") from None
    if not first_byte:
        raise KinetoscopeError(f"{path}: empty file (0 bytes)")
