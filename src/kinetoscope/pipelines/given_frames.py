"""Pipelines that take pixel frames: image-to-video and editing (SDEdit), on KinetoscopePipeline's parts.

Each wraps a :class:`~kinetoscope.pipelines.KinetoscopePipeline` (``from_pretrained`` loads one,
or pass one in to share its weights, as diffusers' ``from_pipe``) and calls it with given
latents: the frames are placed on the latent grid by :mod:`kinetoscope.pipelines.conditioning`,
held while the rest is sampled, and put back as they were in the output. Arguments follow
diffusers (``image=``, ``video=``, ``strength=``, ``num_frames``, ``generator``, ...); frames are
uint8 ``"t h w c"`` arrays (an image ``"h w c"``), and so is every output video.

Prompts are upsampled once per call and grounded on the given frames: what the prompt leaves
open (colour, size, background, motion of a given video) is read from them
(:mod:`kinetoscope.shapes.grounding`), so the caption the model reads agrees with what it is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kinetoscope.pipelines.conditioning import encode_given, layout_given, paste_given
from kinetoscope.pipelines.text_to_video import KinetoscopePipeline, VideoPipelineOutput

# How freely partly given latent frames are re-sampled (their SDEdit strength); see conditioning.py.
PARTIAL_STRENGTH = 0.5


@dataclass
class ConditionedVideoOutput(VideoPipelineOutput):
    """``frames`` and ``prompts`` as :class:`VideoPipelineOutput` (one video, uint8 ``"t h w c"``);
    ``given``: per video, bool ``"t"``, True at the frames that are the input's, exactly as given."""

    given: list[np.ndarray] = field(default_factory=list)


def as_frames(frames: Any, name: str, *, image: bool = False) -> np.ndarray:
    """uint8 ``"t h w 3"`` from an array (``"h w 3"`` is one frame) or a sequence of ``"h w 3"`` frames.

    Raises ValueError naming ``name`` for anything else, for no frames, and with ``image``
    for more than one frame.
    """
    if isinstance(frames, Sequence) and not isinstance(frames, np.ndarray):
        frames = np.stack([np.asarray(f) for f in frames]) if len(frames) else np.zeros((0, 1, 1, 3), np.uint8)
    array = np.asarray(frames)
    if array.ndim == 3:
        array = array[None]
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3 or min(array.shape[1:3]) < 1:
        raise ValueError(f"{name}: expected uint8 RGB frames 't h w 3' (or one 'h w 3'), got {array.dtype} {array.shape}")
    if len(array) < 1:
        raise ValueError(f"{name}: has no frames")
    if image and len(array) != 1:
        raise ValueError(f"{name}: expected one image, got {len(array)} frames")
    # A private, writable copy: decoders hand out read-only arrays, which torch warns about.
    return np.array(array, order="C", copy=True)


def check_size(name: str, frames: np.ndarray, height: int | None, width: int | None) -> tuple[int, int]:
    """The frames' ``(height, width)``; ValueError when a requested size differs."""
    h, w = frames.shape[1:3]
    if (height is not None and height != h) or (width is not None and width != w):
        raise ValueError(
            f"{name} is {w}x{h} (width x height) but the video is asked to be {width or w}x{height or h}; "
            "given frames must have the video's size"
        )
    return h, w


class ConditionedPipeline:
    """The shared part of the pipelines that take frames: loading, prompts, one sampled window."""

    def __init__(self, pipe: KinetoscopePipeline) -> None:
        self.pipe = pipe

    @classmethod
    def from_pretrained(cls, directory: str | Path | None = None, device: str | torch.device = "cpu"):
        """Load a model folder (see :meth:`KinetoscopePipeline.from_pretrained`)."""
        return cls(KinetoscopePipeline.from_pretrained(directory, device=device))

    @property
    def defaults(self):
        return self.pipe.defaults

    def prepare_prompt(self, prompt: str, frames: np.ndarray | None, upsample: bool | None, seed: int) -> str:
        """The caption the model reads: upsampled (grounded on ``frames``) unless ``upsample`` is False."""
        if not isinstance(prompt, str):
            raise ValueError(f"prompt must be one string, got {type(prompt).__name__}")
        if not (self.defaults.upsample_prompts if upsample is None else upsample):
            return prompt
        from kinetoscope.shapes.prompts import upsample_prompt

        return upsample_prompt(prompt, seed=seed, frames=frames)

    def sample_window(
        self,
        prompt: str,
        frames: np.ndarray,
        positions: Sequence[int],
        num_frames: int,
        generator: torch.Generator,
        partial_strength: float = PARTIAL_STRENGTH,
        **kwargs: Any,
    ) -> np.ndarray:
        """One clip of ``num_frames`` with ``frames`` held at ``positions`` and put back as they were.

        ``prompt`` is used as written; ``kwargs`` go to :meth:`KinetoscopePipeline.__call__`.
        """
        layout = layout_given(num_frames, positions, self.pipe.vae.temporal_compression)
        if layout.given.all():  # nothing left to sample: every frame is given
            return paste_given(np.empty((num_frames, *frames.shape[1:]), np.uint8), frames, positions)
        if not 0 < partial_strength <= 1:
            raise ValueError(f"partial_strength must be in (0, 1], got {partial_strength}")
        height, width = frames.shape[1:3]
        held = encode_given(self.pipe.encode, frames, layout)
        out = self.pipe(
            prompt,
            num_frames=num_frames,
            height=height,
            width=width,
            generator=generator,
            upsample_prompt=False,
            given_latents=held.latents,
            given_mask=held.given_mask,
            release_mask=held.release_mask,
            strength=partial_strength if held.release_mask is not None else 1.0,
            output_type="np",
            **kwargs,
        )
        return paste_given(out.frames[0], frames, positions)


def seeded_generator(generator: torch.Generator | None, seed: int) -> torch.Generator:
    """``generator``, or a new one seeded with ``seed``: one per call, so windows draw in turn."""
    return generator if generator is not None else torch.Generator().manual_seed(seed)


class KinetoscopeImageToVideoPipeline(ConditionedPipeline):
    """Animate an image: it becomes frame ``image_frame`` of a generated video."""

    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        image: np.ndarray,
        image_frame: int = 0,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
        upsample_prompt: bool | None = None,
        partial_strength: float = PARTIAL_STRENGTH,
        **kwargs: Any,
    ) -> ConditionedVideoOutput:
        """``num_frames`` (default: the model's) frames with ``image`` (uint8 ``"h w 3"``) at
        ``image_frame`` (negative counts from the end: -1 is the last frame).

        The video has the image's size; ``height``/``width``, if given, must equal it. At frame 0
        the image fills a latent frame of its own and is held exactly; anywhere else it shares
        one with frames to be generated (a partly given latent frame, see
        :mod:`~kinetoscope.pipelines.conditioning`). ``kwargs`` (``negative_prompt``,
        ``num_inference_steps``, ``guidance_scale``, ``sampler``, ``progress``) go to
        :meth:`KinetoscopePipeline.__call__`.
        """
        image = as_frames(image, "image", image=True)
        height, width = check_size("image", image, height, width)
        num_frames = self.defaults.num_frames if num_frames is None else num_frames
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {num_frames}")
        if not -num_frames <= image_frame < num_frames:
            raise ValueError(f"image_frame must be in {-num_frames}..{num_frames - 1} for {num_frames} frames, got {image_frame}")
        position = image_frame % num_frames
        text = self.prepare_prompt(prompt, image, upsample_prompt, seed)
        video = self.sample_window(
            text, image, [position], num_frames, seeded_generator(generator, seed), partial_strength, **kwargs
        )
        given = np.zeros(num_frames, dtype=bool)
        given[position] = True
        return ConditionedVideoOutput([video], [text], [given])


class KinetoscopeVideoToVideoPipeline(ConditionedPipeline):
    """Edit a video with a new prompt by SDEdit (Meng et al. 2022): noise its latent, then denoise."""

    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        video: np.ndarray,
        strength: float | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
        upsample_prompt: bool | None = None,
        **kwargs: Any,
    ) -> ConditionedVideoOutput:
        """``video`` (uint8 ``"t h w 3"``) redrawn to follow ``prompt``; same frame count and size.

        The video's latent is taken to ``t = strength`` on the rectified-flow path,
        ``(1 - s) x0 + s noise``, and the sampler runs its steps below ``s``: what survives that
        much noise (where things are and how they move) is kept, the rest follows the prompt.
        ``strength`` is in (0, 1] (default: the model's ``edit_strength``); 1 ignores the input.
        ``kwargs`` go to :meth:`KinetoscopePipeline.__call__` as for image-to-video.
        """
        video = as_frames(video, "video")
        strength = self.defaults.edit_strength if strength is None else strength
        if not 0 < strength <= 1:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        text = self.prepare_prompt(prompt, video, upsample_prompt, seed)
        num_frames, height, width = video.shape[:3]
        latents = self.pipe.encode(video)
        everything = torch.ones(1, 1, latents.shape[2], 1, 1, dtype=torch.bool, device=latents.device)
        out = self.pipe(
            text,
            num_frames=num_frames,
            height=height,
            width=width,
            generator=seeded_generator(generator, seed),
            upsample_prompt=False,
            given_latents=latents,
            release_mask=everything,
            strength=strength,
            output_type="np",
            **kwargs,
        )
        return ConditionedVideoOutput(out.frames, [text], [np.zeros(num_frames, dtype=bool)])
