"""The adherence a perfect generator could reach through a VAE: the analyzer on reconstructions.

A diffusion transformer makes latents, and whatever the VAE's decoder cannot draw, no DiT can.
Rendering Shapes World clips, passing them through the VAE and judging the reconstructions
against their own captions gives the ceiling on `eval t2v`'s accuracies for any DiT over that
VAE. Measured on an earlier shipped VAE, this is how shape (a small square's corners are lost) was
found to cap all-correct far below the issue's targets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
import torch
from einops import rearrange

from kinetoscope.shapes.analyzer import analyze_clip
from kinetoscope.shapes.prompts import parse_prompt
from kinetoscope.shapes.render import render_random_clip
from kinetoscope.training.vae import to_model_input

# Far above the seeds training streams draw, like the VAE's held-out clips.
HELDOUT_SEED = 2**41

# Frames and their caption in, frames out (a VAE round trip ignores the caption; a DiT's one-step
# prediction, evaluation.one_step, reads it).
Roundtrip = Callable[[np.ndarray, str], np.ndarray]


def vae_roundtrip(vae) -> Roundtrip:
    """uint8 ``"t h w c"`` frames through ``vae`` (posterior mode) and back, as uint8."""

    @torch.no_grad()
    def roundtrip(frames: np.ndarray, caption: str = "") -> np.ndarray:
        x = to_model_input(frames[None], next(vae.parameters()).device)
        y = vae.decode(vae.encode(x).mode(), *x.shape[2:]).clamp(-1, 1)
        return rearrange(torch.round((y[0] + 1) * 127.5).to(torch.uint8), "c t h w -> t h w c").cpu().numpy()

    return roundtrip


def reconstruction_adherence(
    roundtrip: Roundtrip,
    *,
    count: int = 40,
    num_objects: int = 1,
    seed: int = HELDOUT_SEED,
    num_frames: int = 16,
    height: int = 64,
    width: int = 64,
) -> dict[str, float]:
    """Share of ``count`` random ``num_objects``-object clips whose round trip the analyzer judges
    correct against the clip's caption: ``all_correct``, ``background``, ``count`` (of objects)
    and one entry per object attribute (over all objects), each in [0, 1]."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    passed: dict[str, list[bool]] = defaultdict(list)
    for i in range(count):
        clip = render_random_clip(seed + i, height=height, width=width, num_frames=num_frames, num_objects=num_objects)
        report = analyze_clip(roundtrip(clip.frames, clip.caption), parse_prompt(clip.caption))
        passed["all_correct"].append(report.all_correct)
        passed["count"].append(report.count.ok)
        if report.background is not None:
            passed["background"].append(report.background.ok)
        for obj in report.objects:
            for attribute in obj.attributes:
                passed[attribute.name].append(attribute.ok)
    return {name: float(np.mean(values)) for name, values in passed.items()}
