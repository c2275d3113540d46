"""Captions for clips: a sidecar file beside the video, a vision-language model, or none.

A sidecar shares the video's name: ``video.txt`` (one caption for the whole file),
``video.json`` (a string, ``{"text": ...}``, or a list of ``{"start", "end", "text"}`` in
seconds, also under ``{"segments": [...]}``) or ``video.srt`` (subtitles). Every form reads as
timed segments, and a clip's caption joins the segments that overlap it. Files without a
sidecar go to the captioner when there is one: any object with ``caption(frames) -> str``
(:class:`Captioner`), named as ``module:Name``, or :class:`TransformersCaptioner` for a model
folder (:func:`load_captioner`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from kinetoscope.errors import KinetoscopeError

SIDECAR_SUFFIXES = (".txt", ".json", ".srt")
_SRT_TIME = re.compile(r"(\d+):(\d{2}):(\d{2})[,.](\d{1,3})")
_TAG = re.compile(r"<[^>]+>|\{\\[^}]*\}")


@dataclass(frozen=True)
class Segment:
    """Text that holds from ``start`` to ``end`` seconds of the source."""

    start: float
    end: float
    text: str


def find_sidecar(video: Path) -> Path | None:
    """The first of ``video.txt``, ``video.json``, ``video.srt`` that exists."""
    for suffix in SIDECAR_SUFFIXES:
        candidate = video.with_suffix(suffix)
        if candidate != video and candidate.is_file():
            return candidate
    return None


def read_sidecar(path: Path) -> list[Segment]:
    """The segments of a sidecar file; KinetoscopeError names a file it cannot read."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise KinetoscopeError(f"{path}: unreadable caption file ({err})") from None
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return [Segment(0.0, float("inf"), " ".join(text.split()))]
    if suffix == ".srt":
        return _parse_srt(path, text)
    try:
        return _json_segments(json.loads(text))
    except (ValueError, TypeError, KeyError) as err:
        raise KinetoscopeError(f"{path}: not a caption JSON ({err})") from None


def _json_segments(data: object) -> list[Segment]:
    if isinstance(data, str):
        return [Segment(0.0, float("inf"), data.strip())]
    if isinstance(data, dict):
        if "segments" in data:
            return _json_segments(data["segments"])
        text = data.get("text", data.get("caption"))
        if not isinstance(text, str):
            raise ValueError('expected a "text" or "caption" string')
        return [Segment(float(data.get("start", 0.0)), float(data.get("end", float("inf"))), text.strip())]
    if isinstance(data, list):
        return [segment for item in data for segment in _json_segments(item)]
    raise ValueError(f"expected a string, an object or a list, got {type(data).__name__}")


def _seconds(match: re.Match) -> float:
    hours, minutes, seconds, millis = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + int(millis.ljust(3, "0")) / 1000


def _parse_srt(path: Path, text: str) -> list[Segment]:
    segments = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()):
        lines = block.strip().split("\n")
        timing = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing is None:
            continue
        times = list(_SRT_TIME.finditer(lines[timing]))
        if len(times) != 2:
            raise KinetoscopeError(f"{path}: bad SRT timing line {lines[timing]!r}")
        start, end = _seconds(times[0]), _seconds(times[1])
        words = " ".join(_TAG.sub("", line).strip() for line in lines[timing + 1 :])
        if words.strip():
            segments.append(Segment(start, end, " ".join(words.split())))
    return segments


def caption_from_segments(segments: Sequence[Segment], start: float, end: float) -> str:
    """The texts of the segments overlapping ``[start, end)``, in order, repeats dropped."""
    texts: list[str] = []
    for segment in segments:
        overlaps = segment.start < end and segment.end > start
        if overlaps and segment.text and (not texts or texts[-1] != segment.text):
            texts.append(segment.text)
    return " ".join(texts)


@runtime_checkable
class Captioner(Protocol):
    """Anything that describes a clip from a few of its frames (RGB "h w 3" uint8, in order)."""

    def caption(self, frames: Sequence[np.ndarray]) -> str: ...


class TransformersCaptioner:
    """A vision-language model loaded through transformers from a local folder (no download).

    Works with image-to-text models the ``AutoModelForImageTextToText`` class knows (BLIP, GIT,
    Florence-2, LLaVA, Qwen2-VL, a ViT+GPT-2 ``VisionEncoderDecoderModel``, ...): the middle
    frame goes in with the optional ``prompt``, and the prompt is cut from the answer.
    """

    def __init__(self, folder: str | Path, *, prompt: str | None = None, max_new_tokens: int = 48) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise KinetoscopeError(f"--captioner {folder}: no such model folder")
        try:
            import transformers
        except ImportError:
            raise KinetoscopeError("--captioner needs transformers: pip install 'kinetoscope[hf]'") from None
        try:
            self.model = transformers.AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True)
            self.processor = _load_processor(transformers, folder)
        except (OSError, ValueError, KeyError) as err:
            raise KinetoscopeError(f"--captioner {folder}: cannot load it as an image-to-text model ({err})") from None
        self.model.eval()
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens

    def caption(self, frames: Sequence[np.ndarray]) -> str:
        import torch
        from PIL import Image

        image = Image.fromarray(frames[len(frames) // 2])
        kwargs = {"images": image, "return_tensors": "pt"}
        if self.prompt:
            kwargs["text"] = self.prompt
        inputs = self.processor(**kwargs)
        with torch.no_grad():
            ids = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens)
        text = self.processor.batch_decode(ids, skip_special_tokens=True)[0].strip()
        if self.prompt and text.startswith(self.prompt):
            text = text[len(self.prompt) :]
        return " ".join(text.split())


class _ImageAndTokenizer:
    """A processor for models whose folder has an image processor and a tokenizer but no processor."""

    def __init__(self, image_processor, tokenizer) -> None:
        self.image_processor, self.tokenizer = image_processor, tokenizer

    def __call__(self, images, return_tensors: str, text: str | None = None):
        inputs = dict(self.image_processor(images=images, return_tensors=return_tensors))
        if text:
            inputs["decoder_input_ids"] = self.tokenizer(text, return_tensors=return_tensors).input_ids
        return inputs

    def batch_decode(self, ids, skip_special_tokens: bool) -> list[str]:
        return self.tokenizer.batch_decode(ids, skip_special_tokens=skip_special_tokens)


def _load_processor(transformers, folder: Path):
    try:
        processor = transformers.AutoProcessor.from_pretrained(folder, local_files_only=True)
        if hasattr(processor, "batch_decode") and not isinstance(processor, transformers.PreTrainedTokenizerBase):
            return processor
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return _ImageAndTokenizer(
        transformers.AutoImageProcessor.from_pretrained(folder, local_files_only=True),
        transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True),
    )


def load_captioner(spec: str, prompt: str | None = None) -> Captioner:
    """A captioner from a model folder (transformers) or a ``module:Name`` class built with no arguments."""
    from kinetoscope.data.curate import plugins

    if plugins.is_import_spec(spec) and not Path(spec).exists():
        return plugins.build(spec, "--captioner", Captioner)  # type: ignore[return-value]
    return TransformersCaptioner(spec, prompt=prompt)
