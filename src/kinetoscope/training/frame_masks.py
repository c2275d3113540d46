"""Which latent frames of a training clip are given (clean, t = 0, out of the loss).

One model learns every task this way (Open-Sora 1.2's mask strategies): no mask is
text-to-video; the first frame is image-to-video; a prefix or suffix is extending a video
forward or backward; first and last is connecting two clips; random frames cover
interpolation and anything else a user may pin.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

KINDS = ("none", "first", "last", "first_last", "prefix", "suffix", "random")


@dataclass
class FrameMaskConfig:
    """Share of training clips under each kind of mask (normalised; need not sum to one)."""

    none: float = 0.55
    first: float = 0.15
    last: float = 0.04
    first_last: float = 0.06
    prefix: float = 0.08
    suffix: float = 0.06
    random: float = 0.06

    def __post_init__(self) -> None:
        weights = self.weights()
        if bool((weights < 0).any()) or float(weights.sum()) <= 0:
            raise ValueError(f"mask weights must be non-negative and not all zero, got {weights.tolist()}")

    def weights(self) -> Tensor:
        return torch.tensor([float(getattr(self, k)) for k in KINDS], dtype=torch.float64)


def sample_frame_masks(num_clips: int, num_frames: int, config: FrameMaskConfig, generator: torch.Generator) -> Tensor:
    """Given-frame masks ``"b t"`` (bool, True = given) for ``num_clips`` clips of ``num_frames`` latent frames.

    A clip always keeps at least one frame to denoise, so a one-frame clip (an image) is never
    given. Drawn on the CPU from ``generator``, so the masks follow the run's seed.
    """
    masks = torch.zeros(num_clips, num_frames, dtype=torch.bool)
    if num_frames < 2:
        return masks
    kinds = torch.multinomial(config.weights(), num_clips, replacement=True, generator=generator)
    # k for prefixes and suffixes: 1 .. num_frames - 1 frames given.
    ks = torch.randint(1, num_frames, (num_clips,), generator=generator)
    randoms = torch.rand(num_clips, num_frames, generator=generator) < 0.5
    for i, (kind, k) in enumerate(zip(kinds.tolist(), ks.tolist(), strict=True)):
        name = KINDS[kind]
        if name == "first":
            masks[i, 0] = True
        elif name == "last":
            masks[i, -1] = True
        elif name == "first_last":
            masks[i, 0] = masks[i, -1] = True
        elif name == "prefix":
            masks[i, :k] = True
        elif name == "suffix":
            masks[i, num_frames - k :] = True
        elif name == "random":
            masks[i] = randoms[i]
            if bool(masks[i].all()):
                masks[i, int(torch.randint(num_frames, (1,), generator=generator))] = False
    return masks
