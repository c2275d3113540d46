"""Contact sheets: one row per clip, a few frames sampled across time, the caption above each row.

Every frame is scaled so that its shorter side has the same length, so clips of different sizes
and aspect ratios share one scale and a Shapes World object looks the same size in every row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_PAPER = (250, 250, 250)
_INK = (20, 20, 20)
_MUTED = (115, 115, 115)
_BORDER = (175, 175, 175)  # outlines frames, so a white-background clip still shows its edge
_MARGIN, _GAP, _ROW_GAP = 16, 6, 22
_CAPTION_SIZE, _LABEL_SIZE = 16, 12


@dataclass(frozen=True)
class _Row:
    images: list[Image.Image]
    times: list[int]
    caption: str
    details: str

    @property
    def width(self) -> int:
        return sum(image.width for image in self.images) + _GAP * (len(self.images) - 1)

    @property
    def height(self) -> int:
        return max(image.height for image in self.images)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def sample_times(num_frames: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly from the first frame to the last (fewer if the clip is shorter)."""
    return sorted({int(round(i)) for i in np.linspace(0, num_frames - 1, min(count, num_frames))})


def _scaled(frame: np.ndarray, scale: float) -> Image.Image:
    image = Image.fromarray(frame)
    size = (max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale)))
    # Whole-number enlargements keep the pixels crisp; anything else needs proper filtering.
    crisp = scale >= 1 and float(scale).is_integer()
    return image.resize(size, Image.Resampling.NEAREST if crisp else Image.Resampling.LANCZOS)


def _row(clip: np.ndarray, caption: str, frames_per_row: int, short_side: int, max_row_width: int) -> _Row:
    num_frames, height, width = clip.shape[:3]
    times = sample_times(num_frames, frames_per_row)
    scale = short_side / min(height, width)
    row_width = len(times) * width * scale + _GAP * (len(times) - 1)
    if row_width > max_row_width:
        # Whole-pixel frame widths, so rounding cannot push the row past the limit.
        scale = ((max_row_width - _GAP * (len(times) - 1)) // len(times)) / width
    details = f"{height} x {width}, {num_frames} frame{'s' if num_frames != 1 else ''}"
    return _Row([_scaled(clip[t], scale) for t in times], times, caption, details)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def contact_sheet(
    clips: Sequence[np.ndarray],
    captions: Sequence[str],
    frames_per_row: int = 6,
    *,
    short_side: int = 128,
    max_row_width: int = 1600,
) -> np.ndarray:
    """Lay clips out one per row and return the sheet as uint8 ``"h w c"`` (RGB).

    ``clips`` are uint8 ``"t h w c"`` arrays of any sizes; each row shows ``frames_per_row``
    frames sampled from first to last, labelled with their index, under the clip's caption
    and size. Frames are drawn with their shorter side ``short_side`` pixels long, shrunk
    further where a row would pass ``max_row_width``.
    """
    if len(clips) != len(captions):
        raise ValueError(f"got {len(clips)} clips but {len(captions)} captions")
    if not clips:
        raise ValueError("a contact sheet needs at least one clip")
    if frames_per_row < 1:
        raise ValueError(f"frames_per_row must be at least 1, got {frames_per_row}")
    for index, clip in enumerate(clips):
        if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] != 3 or clip.shape[0] < 1:
            raise ValueError(f"clip {index}: expected uint8 't h w 3', got {clip.dtype} {clip.shape}")

    rows = [_row(c, text, frames_per_row, short_side, max_row_width) for c, text in zip(clips, captions)]
    caption_font, label_font = _font(_CAPTION_SIZE), _font(_LABEL_SIZE)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    inner = max(max(row.width for row in rows), 480)
    wrapped = [_wrap(measure, row.caption, caption_font, inner) for row in rows]
    caption_line = round(_CAPTION_SIZE * 1.35)
    label_line = round(_LABEL_SIZE * 1.6)

    total = _MARGIN
    for row, lines in zip(rows, wrapped):
        total += len(lines) * caption_line + label_line + row.height + label_line + _ROW_GAP
    sheet = Image.new("RGB", (inner + 2 * _MARGIN, total - _ROW_GAP + _MARGIN), _PAPER)
    draw = ImageDraw.Draw(sheet)

    y = _MARGIN
    for row, lines in zip(rows, wrapped):
        for line in lines:
            draw.text((_MARGIN, y), line, fill=_INK, font=caption_font)
            y += caption_line
        draw.text((_MARGIN, y), row.details, fill=_MUTED, font=label_font)
        y += label_line
        x = _MARGIN
        for image, t in zip(row.images, row.times):
            sheet.paste(image, (x, y))
            draw.rectangle((x - 1, y - 1, x + image.width, y + image.height), outline=_BORDER)
            label = f"frame {t}"
            draw.text((x + (image.width - draw.textlength(label, font=label_font)) / 2, y + row.height + 4),
                      label, fill=_MUTED, font=label_font)  # fmt: skip
            x += image.width + _GAP
        y += row.height + label_line + _ROW_GAP
    return np.asarray(sheet)
