"""Shared fixtures: the installed console script, and small Shapes World clips made on the spot."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kinetoscope.shapes.render import RenderedClip, render_clip
from kinetoscope.shapes.spec import ObjectSpec, SceneSpec

KINETOSCOPE = Path(sys.executable).parent / "kinetoscope"


@pytest.fixture(scope="session")
def kinetoscope_bin() -> Path:
    """Path of the installed ``kinetoscope`` console script (beside the running Python)."""
    assert KINETOSCOPE.exists(), f"{KINETOSCOPE} missing: install the package in editable mode"
    return KINETOSCOPE


@pytest.fixture(scope="session")
def run_cli(kinetoscope_bin: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``kinetoscope ARGS...`` as a user would; returns the completed process (text output)."""

    def run(*args: str | Path, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(kinetoscope_bin), *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd
        )

    return run


TWO_OBJECT_SCENE = SceneSpec(
    "black",
    (
        ObjectSpec("red", "circle", "large", "right", "slowly"),
        ObjectSpec("blue", "square", "small", "down-left", "quickly"),
    ),
)


@pytest.fixture(scope="session")
def rendered_clip() -> RenderedClip:
    """A 16-frame 64 x 64 Shapes World clip of :data:`TWO_OBJECT_SCENE` (seed 0). Do not modify its arrays."""
    return render_clip(TWO_OBJECT_SCENE, height=64, width=64, num_frames=16, seed=0)


@pytest.fixture(scope="session")
def rendered_wide_clip() -> RenderedClip:
    """A 16:9 (64 x 112), 12-frame clip of one green triangle moving quickly up and to the right."""
    scene = SceneSpec("white", (ObjectSpec("green", "triangle", "large", "up-right", "quickly"),))
    return render_clip(scene, height=64, width=112, num_frames=12, seed=1)
