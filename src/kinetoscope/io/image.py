"""Still images (PNG, JPEG, WebP, ...) read with Pillow, and seen as one-frame videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from kinetoscope.errors import KinetoscopeError
from kinetoscope.io.decode import VideoInfo
from kinetoscope.io.inputs import check_input_file, describe_error

# GIF is missing on purpose: it is read as a video (all its frames, with their timing).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})
# Pillow modes named like FFmpeg pixel formats, so images and videos report alike.
_MODE_PIX_FMT = {
    "RGB": "rgb24", "RGBA": "rgba", "L": "gray", "P": "pal8", "LA": "ya8", "CMYK": "cmyk", "I;16": "gray16",
}


def is_image_path(path: str | Path) -> bool:
    """True for still-image suffixes, which are read with Pillow instead of PyAV."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _load_image(path: Path) -> tuple[np.ndarray, str, str]:
    """Decode ``path`` fully (that is what exposes truncation): (RGB "h w c", format, mode)."""
    check_input_file(path)
    try:
        with Image.open(path) as image:
            image.load()
            kind = (image.format or path.suffix.lstrip(".")).lower()
            return np.asarray(image.convert("RGB")), kind, image.mode
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise KinetoscopeError(f"{path}: not a readable image, corrupt or truncated ({describe_error(err)})") from None


def read_image(path: str | Path) -> np.ndarray:
    """Read a still image (PNG, JPEG, WebP, ...; an animation's first frame) as uint8 "h w c" RGB, c=3.

    Alpha is dropped, not composited: fully transparent pixels keep whatever colour they store.
    """
    return _load_image(Path(path))[0]


def image_info(path: str | Path, image_fps: float) -> VideoInfo:
    """VideoInfo of a still image seen as a one-frame video at ``image_fps``."""
    path = Path(path)
    rgb, kind, mode = _load_image(path)
    height, width = rgb.shape[:2]
    return VideoInfo(
        path=path, num_frames=1, fps=float(image_fps), height=height, width=width, duration=1.0 / image_fps,
        codec=kind, container=kind, pix_fmt=_MODE_PIX_FMT.get(mode, mode.lower()),
    )
