"""All-or-nothing file output: write a hidden temporary beside the target, then rename."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kinetoscope.errors import KinetoscopeError


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` in one step.

    The temporary sits in the target's folder (``os.replace`` is atomic only within one
    file system) and keeps the target's suffix, so format guessing by name still works.
    On any exception, KeyboardInterrupt included, the temporary is deleted and the
    exception propagates: readers never see a half-written file under the final name.
    """
    path = Path(path)
    if path.is_dir():
        raise KinetoscopeError(f"{path}: is a directory, not an output file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise KinetoscopeError(f"{path}: cannot create its folder ({err.strerror or err})") from None
    # A random token instead of mkstemp: mkstemp creates files with mode 0600, which would
    # survive the rename, while a file created by the writer gets the user's usual umask.
    temporary = path.with_name(f".{path.stem}.tmp-{secrets.token_hex(4)}{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
