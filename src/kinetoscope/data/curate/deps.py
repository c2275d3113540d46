"""The optional dependencies of curation, checked once with a message that says how to get them."""

from __future__ import annotations

import importlib.util

from kinetoscope.errors import KinetoscopeError

# Module name -> what provides it. scenedetect-headless is PySceneDetect built on
# opencv-python-headless; plain `scenedetect` pulls the GUI opencv-python, which overwrites
# the headless build's cv2/ folder when both are installed.
_MODULES = {"cv2": "opencv-python-headless", "scenedetect": "scenedetect-headless"}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError, AttributeError):  # a module blocked or half-installed
        return False


def require(what: str = "data curate") -> None:
    """Raise KinetoscopeError naming the ``curate`` extra unless OpenCV and PySceneDetect import."""
    missing = [package for module, package in _MODULES.items() if not _importable(module)]
    if missing:
        raise KinetoscopeError(f"{what} needs {' and '.join(missing)}: pip install 'kinetoscope[curate]'")
