"""Which caption words a trained DiT uses: its loss with one attribute of the caption changed.

For cached training clips with their ground-truth scenes, the velocity MSE is computed with the
true caption and with a caption where one attribute is swapped (same clips, same noise, same
times). A model that reads the attribute loses more with the swapped caption; a gap of zero
means the word is ignored. This is how the Shapes model was found to ignore direction words
while it read colour, size and background (docs/experiments-dit.md, Why direction failed).

Two-object clips ask a second question: does the model tie each word to its object? Exchanging
an attribute between the two objects (the red ball's direction given to the blue box and back)
keeps the caption's words and changes only which object they describe, so its gap measures
binding alone; reversing both objects' directions measures reading direction in such captions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from kinetoscope.diffusion import add_noise, velocity_target
from kinetoscope.shapes.spec import SceneSpec, canonical_caption
from kinetoscope.shapes.swaps import ATTRIBUTES, TWO_OBJECT_SWAPS, swapped_scene


@torch.no_grad()
def _loss(transformer, text_encoder, x0: Tensor, noise: Tensor, t: float, captions: list[str]) -> float:
    times = torch.full((x0.shape[0],), t)
    x_t = add_noise(x0, noise, t)
    text = text_encoder.encode(captions, x0.device)
    v = transformer(x_t, times, text.hidden, text.mask)
    return float((v - velocity_target(x0, noise)).square().mean())


def caption_swap_gaps(
    transformer: torch.nn.Module,
    text_encoder,
    latents: Tensor,
    scenes: Sequence[SceneSpec],
    *,
    times: Sequence[float] = (0.3, 0.5, 0.7, 0.9),
    max_clips: int = 64,
    seed: int = 0,
) -> list[dict]:
    """One row per (attribute, t): ``clips``, ``loss_true``, ``loss_swapped`` and ``gap``.

    ``latents`` ``"n c t h w"`` are clean (normalised) latents whose ground truth is ``scenes``;
    each attribute uses up to ``max_clips`` clips it applies to. Losses are plain velocity MSE
    averaged over the clips, with the same noise for the true and the swapped caption.
    """
    if len(scenes) != latents.shape[0]:
        raise ValueError(f"got {len(scenes)} scenes for {latents.shape[0]} latents")
    rows = []
    true_losses: dict[tuple[tuple[int, ...], float], float] = {}  # appearance swaps share their clips, as do motion ones
    for attribute in ATTRIBUTES + TWO_OBJECT_SWAPS:
        pairs = [(i, swapped_scene(s, attribute)) for i, s in enumerate(scenes)]
        pairs = [(i, s) for i, s in pairs if s is not None][:max_clips]
        if not pairs:
            continue
        clips = tuple(i for i, _ in pairs)
        x0 = latents[torch.tensor(clips)].float()
        true = [canonical_caption(scenes[i]) for i, _ in pairs]
        swapped = [canonical_caption(s) for _, s in pairs]
        generator = torch.Generator().manual_seed(seed)
        for t in times:
            noise = torch.randn(x0.shape, generator=generator)
            if (clips, t) not in true_losses:  # same clips and seed give the same noise
                true_losses[clips, t] = _loss(transformer, text_encoder, x0, noise, t, true)
            loss_true = true_losses[clips, t]
            loss_swapped = _loss(transformer, text_encoder, x0, noise, t, swapped)
            rows.append({"attribute": attribute, "t": t, "clips": len(pairs), "loss_true": loss_true,
                         "loss_swapped": loss_swapped, "gap": loss_swapped - loss_true})  # fmt: skip
    return rows
