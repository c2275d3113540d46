"""Extending videos forward or backward, growing long videos, and connecting two videos.

All three run the model in windows no longer than it was trained on (``window_frames``, by
default the model's ``num_frames``), each window holding frames already there (its *context*,
at least ``context_frames``) and sampling new ones next to them, as Open-Sora 1.2's loop does.
Windows are laid so that the context fills whole latent frames (see
:mod:`kinetoscope.pipelines.conditioning`):

* forward, the context is the last ``1 + T k`` frames and starts the window, so its latents are
  exactly those of a clip starting there, and the new frames begin a latent frame;
* backward, the new frames are ``1 + T k`` (the ones too many are dropped from the start) and
  the context, the first frames so far, begins a latent frame after them;
* connecting first extends A forward until what is left fits one window, then samples a window
  holding A's end, the new frames and B's start: A's end is aligned as forward, B's start is
  aligned when the new frames fill whole latent frames and partly given otherwise.

Each window re-encodes its context from pixels, so the frames already made (and the input's) are
kept as they are; only new frames are added. With prompt upsampling on, each window's caption
names the directions its context shows (:func:`~kinetoscope.shapes.grounding.recaption_motion`):
training captions name the direction a clip starts with, and a window may start after a bounce.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from kinetoscope.pipelines.conditioning import aligned_prefix
from kinetoscope.pipelines.given_frames import (
    PARTIAL_STRENGTH,
    ConditionedPipeline,
    ConditionedVideoOutput,
    seeded_generator,
    as_frames,
    check_size,
)
from kinetoscope.vae.framing import decoded_frames, latent_frames

# Frames a window holds from what is already there, at the least (rounded up to whole latent frames).
CONTEXT_FRAMES = 5


class WindowPlan:
    """Where windows go: at most ``latents`` latent frames each (``max_frames`` pixel frames), at
    least ``context_frames`` of them already there, ``t`` pixel frames per latent frame after the first."""

    def __init__(self, window_frames: int, context_frames: int, temporal_compression: int) -> None:
        if not isinstance(window_frames, int) or window_frames < 2:
            raise ValueError(f"window_frames must be at least 2, got {window_frames}")
        if not isinstance(context_frames, int) or context_frames < 1:
            raise ValueError(f"context_frames must be at least 1, got {context_frames}")
        self.t = temporal_compression
        self.window_frames = window_frames
        self.latents = latent_frames(window_frames, self.t)
        self.max_frames = decoded_frames(self.latents, self.t)
        self.context_latents = latent_frames(context_frames, self.t)
        if self.context_latents >= self.latents:
            raise ValueError(
                f"context_frames={context_frames} leaves no room for new frames in a window of {window_frames} frames"
            )
        self.context_frames = context_frames

    def forward(self, available: int, remaining: int) -> tuple[int, int]:
        """(context frames, new frames) of the next forward window."""
        new_latents = min(math.ceil(remaining / self.t), self.latents - self.context_latents)
        new = min(remaining, self.t * new_latents)
        context = aligned_prefix(min(available, self.max_frames - self.t * new_latents), self.t)
        return context, new

    def backward(self, available: int, remaining: int) -> tuple[int, int, int]:
        """(context frames, frames sampled before the context, of which new) of the next backward window."""
        # The new frames are latent frame 0 and k groups of T, so the context starts a group.
        room = self.latents - math.ceil(self.context_frames / self.t)
        new_latents = min(1 + math.ceil((remaining - 1) / self.t), room)
        sampled = decoded_frames(new_latents, self.t)
        context = min(available, self.t * (self.latents - new_latents))
        return context, sampled, min(remaining, sampled)


def _check_count(num_frames: Any) -> int:
    if not isinstance(num_frames, int) or isinstance(num_frames, bool) or num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    return num_frames


def _plan(
    pipeline: ConditionedPipeline, num_frames: int | None, window_frames: int | None, context_frames: int
) -> tuple[int, WindowPlan]:
    """The checked count of new frames and the windows, the model's clip length where not given."""
    length = pipeline.defaults.num_frames
    count = _check_count(length if num_frames is None else num_frames)
    compression = pipeline.pipe.vae.temporal_compression
    return count, WindowPlan(length if window_frames is None else window_frames, context_frames, compression)


class KinetoscopeExtendPipeline(ConditionedPipeline):
    """Extend a video forward or backward in time, or grow a long video from text, window by window."""

    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        video: np.ndarray | None = None,
        num_frames: int | None = None,
        backward: bool = False,
        height: int | None = None,
        width: int | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
        upsample_prompt: bool | None = None,
        window_frames: int | None = None,
        context_frames: int = CONTEXT_FRAMES,
        **kwargs: Any,
    ) -> ConditionedVideoOutput:
        """``video`` followed by ``num_frames`` new frames (``backward``: the new frames first).

        Without ``video`` the first window comes from the text alone (``height``/``width``, default
        the model's), so a 64-frame video can be grown from a 16-frame model. ``num_frames``
        counts only the new frames (default: the model's ``num_frames``). Windows hold at least
        ``context_frames`` frames already there and are at most ``window_frames`` long (default:
        the model's ``num_frames``). ``kwargs`` (``negative_prompt``, ``num_inference_steps``,
        ``guidance_scale``, ``sampler``, ``progress``) go to :meth:`KinetoscopePipeline.__call__`.
        """
        num_frames, windows = _plan(self, num_frames, window_frames, context_frames)
        generator = seeded_generator(generator, seed)
        recaption = self.defaults.upsample_prompts if upsample_prompt is None else upsample_prompt
        if video is None:
            text = self.prepare_prompt(prompt, None, upsample_prompt, seed)
            first = min(num_frames, windows.window_frames)
            out = self.pipe(
                text, num_frames=first, height=height, width=width, generator=generator, upsample_prompt=False,
                output_type="np", **kwargs,
            ).frames[0]  # fmt: skip
            frames = _forward(self, text, out, num_frames - first, windows, generator, recaption, kwargs)
            return ConditionedVideoOutput([frames], [text], [np.zeros(len(frames), dtype=bool)])
        video = as_frames(video, "video")
        check_size("video", video, height, width)
        text = self.prepare_prompt(prompt, video, upsample_prompt, seed)
        if backward:
            frames = _backward(self, text, video, num_frames, windows, generator, recaption, kwargs)
            given = np.arange(len(frames)) >= num_frames
        else:
            frames = _forward(self, text, video, num_frames, windows, generator, recaption, kwargs)
            given = np.arange(len(frames)) < len(video)
        return ConditionedVideoOutput([frames], [text], [given])


def _caption(text: str, context: np.ndarray, recaption: bool) -> str:
    if not recaption:
        return text
    from kinetoscope.shapes.grounding import recaption_motion

    return recaption_motion(text, context)


def _forward(
    pipe: ConditionedPipeline, text: str, out: np.ndarray, remaining: int, windows: WindowPlan,
    generator: torch.Generator, recaption: bool, kwargs: dict,
) -> np.ndarray:  # fmt: skip
    """``out`` followed by ``remaining`` new frames, one forward window at a time."""
    while remaining > 0:
        context, new = windows.forward(len(out), remaining)
        held = out[len(out) - context :]
        caption = _caption(text, held, recaption)
        window = pipe.sample_window(caption, held, range(context), context + new, generator, **kwargs)
        out = np.concatenate([out, window[context:]])
        remaining -= new
    return out


def _backward(
    pipe: ConditionedPipeline, text: str, out: np.ndarray, remaining: int, windows: WindowPlan,
    generator: torch.Generator, recaption: bool, kwargs: dict,
) -> np.ndarray:  # fmt: skip
    """``remaining`` new frames followed by ``out``, one backward window at a time.

    A caption names the motion its clip starts with. The window that reaches the output's first
    frame starts where the prompt does, so it reads the prompt as it is: a ball the prompt sends
    right may meet the given video after a bounce, which the video's own direction would forbid
    (trained on that caption, the model draws the ball at the wrong place and jumps into the
    video). Earlier windows start inside the new frames, where the best guess is the motion their
    context shows."""
    while remaining > 0:
        context, sampled, new = windows.backward(len(out), remaining)
        positions = range(sampled, sampled + context)
        caption = text if new == remaining else _caption(text, out[:context], recaption)
        window = pipe.sample_window(caption, out[:context], positions, sampled + context, generator, **kwargs)
        out = np.concatenate([window[sampled - new : sampled], out])
        remaining -= new
    return out


class KinetoscopeConnectPipeline(ConditionedPipeline):
    """Connect two videos with generated frames: A, then the new frames, then B."""

    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        video: np.ndarray,
        last_video: np.ndarray,
        num_frames: int | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
        upsample_prompt: bool | None = None,
        window_frames: int | None = None,
        context_frames: int = CONTEXT_FRAMES,
        partial_strength: float = PARTIAL_STRENGTH,
        **kwargs: Any,
    ) -> ConditionedVideoOutput:
        """``video`` (A), ``num_frames`` new frames (default: the model's ``num_frames``), then
        ``last_video`` (B); A and B must have the same size (the names follow Wan's ``image`` and
        ``last_image``). The last window holds A's end (at least ``context_frames``) and B's start
        (at least one latent frame's worth); earlier ones extend A forward. Other arguments as
        :class:`KinetoscopeExtendPipeline`; ``partial_strength`` applies when B's first frames
        share a latent frame with new ones (``num_frames`` not a multiple of the VAE's 4).
        """
        a = as_frames(video, "video")
        b = as_frames(last_video, "last_video")
        check_size("last_video", b, *a.shape[1:3])
        num_frames, windows = _plan(self, num_frames, window_frames, context_frames)
        generator = seeded_generator(generator, seed)
        text = self.prepare_prompt(prompt, a, upsample_prompt, seed)
        recaption = self.defaults.upsample_prompts if upsample_prompt is None else upsample_prompt
        t = windows.t
        least_a = aligned_prefix(min(len(a), context_frames), t)
        least_b = min(len(b), t)
        last = min(num_frames, windows.max_frames - least_a - least_b)
        if last < 1:
            raise ValueError(
                f"a window of {windows.window_frames} frames has no room for new frames between "
                f"{least_a} frames of video and {least_b} of last_video; lower context_frames"
            )
        out = _forward(self, text, a, num_frames - last, windows, generator, recaption, kwargs)
        context_a = aligned_prefix(min(len(out), windows.max_frames - last - least_b), t)
        context_b = min(len(b), windows.max_frames - context_a - last)
        held = np.concatenate([out[len(out) - context_a :], b[:context_b]])
        positions = [*range(context_a), *range(context_a + last, context_a + last + context_b)]
        caption = _caption(text, held[:context_a], recaption)
        window = self.sample_window(
            caption, held, positions, context_a + last + context_b, generator, partial_strength, **kwargs
        )
        frames = np.concatenate([out, window[context_a : context_a + last], b])
        given = np.ones(len(frames), dtype=bool)
        given[len(a) : len(a) + num_frames] = False
        return ConditionedVideoOutput([frames], [text], [given])
