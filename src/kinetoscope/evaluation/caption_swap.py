"""Which caption words a trained DiT uses: its loss with one attribute of the caption changed.

For cached training clips with their ground-truth scenes, the velocity MSE is computed with the
true caption and with a caption where one attribute is swapped (same clips, same noise, same
times). A model that reads the attribute loses more with the swapped caption; a gap of zero
means the word is ignored. This is how the Shapes model was found to ignore direction words
while it read colour, size and background (the README's DiT section).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor

from kinetoscope.diffusion import add_noise, velocity_target
from kinetoscope.shapes.spec import BACKGROUNDS, COLORS, SHAPES, SIZES, SPEEDS, SceneSpec, canonical_caption

ATTRIBUTES = ("color", "shape", "size", "background", "speed", "direction_sign", "direction_axis")
_OPPOSITE = {"right": "left", "left": "right", "up": "down", "down": "up",
             "up-right": "down-left", "down-left": "up-right", "up-left": "down-right", "down-right": "up-left"}  # fmt: skip
# A quarter turn clockwise on screen (+y is down): right -> down -> left -> up -> right.
_QUARTER_TURN = {"right": "down", "down": "left", "left": "up", "up": "right",
                 "up-right": "down-right", "down-right": "down-left", "down-left": "up-left", "up-left": "up-right"}  # fmt: skip


def _next(options: Sequence[str], value: str) -> str:
    options = list(options)
    return options[(options.index(value) + 1) % len(options)]


def swapped_scene(scene: SceneSpec, attribute: str) -> SceneSpec | None:
    """``scene`` with one attribute of its single object (or its background) changed; None where
    the swap does not apply (two objects, or a motion attribute of a still object)."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; expected one of {', '.join(ATTRIBUTES)}")
    if len(scene.objects) != 1:
        return None
    obj = scene.objects[0]
    if attribute == "background":
        return replace(scene, background=_next(BACKGROUNDS, scene.background))
    moving = obj.direction != "still"
    if attribute in ("speed", "direction_sign", "direction_axis") and not moving:
        return None
    changed = {
        "color": lambda: replace(obj, color=_next(COLORS, obj.color)),
        "shape": lambda: replace(obj, shape=_next(SHAPES, obj.shape)),
        "size": lambda: replace(obj, size=_next(SIZES, obj.size)),
        "speed": lambda: replace(obj, speed=_next(SPEEDS, obj.speed)),
        "direction_sign": lambda: replace(obj, direction=_OPPOSITE[obj.direction]),
        "direction_axis": lambda: replace(obj, direction=_QUARTER_TURN[obj.direction]),
    }[attribute]()
    return replace(scene, objects=(changed,))


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
    for attribute in ATTRIBUTES:
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
