"""Given-frame conditioning (image-to-video, extension, interpolation) as a denoiser wrapper.

Positions marked given are held at their clean values and shown to the model at ``t = 0``,
as in Open-Sora 1.2's frame masks and diffusers' LTX image-to-video (per-token timesteps
``t * (1 - mask)``); the sampler is unchanged. The model is trained the same way: given
positions are left clean with ``t = 0`` and out of the loss (``flow_loss``'s mask).
"""

from __future__ import annotations

import torch
from torch import Tensor

from kinetoscope.diffusion.flow import Denoiser, expand_t


def hold_given(x: Tensor, x_given: Tensor, given_mask: Tensor) -> Tensor:
    """``x`` with the given positions replaced by ``x_given``: use it on the starting noise."""
    return torch.where(given_mask, x_given.to(x.dtype), x)


def conditioned_denoiser(denoiser: Denoiser, x_given: Tensor, given_mask: Tensor) -> Denoiser:
    """Hold the positions where ``given_mask`` is True at ``x_given`` during sampling.

    ``given_mask`` is bool with ``x``'s number of dims and broadcasts against it, e.g.
    ``"b 1 t 1 1"`` for given latent frames or ``"b n 1"`` for given packed tokens. The wrapped
    denoiser then receives a per-position ``t`` of the mask's broadcast shape (``t = 0`` where
    given), so it must accept ``t`` with ``x``'s ndim as well as ``"b"``.

    At given positions the returned velocity is ``(x - x_given) / t``: the straight path from
    the sampler's current value to ``x_given`` at ``t = 0``. It is exactly 0 once ``x`` equals
    ``x_given``, so sampling from ``hold_given(noise, x_given, given_mask)`` keeps the given
    values bit for bit; starting from plain noise they are reached up to rounding.
    """
    if given_mask.dtype != torch.bool:
        raise ValueError(f"given_mask must be bool, got {given_mask.dtype}")
    if given_mask.ndim != x_given.ndim:
        raise ValueError(
            f"given_mask has {given_mask.ndim} dims but x_given has {x_given.ndim}; "
            "give it x's dims with 1 where it broadcasts"
        )

    def denoiser_with_given(x: Tensor, t: Tensor) -> Tensor:
        t_full = expand_t(t, x)
        t_pos = torch.where(given_mask, torch.zeros_like(t_full), t_full)
        given = x_given.to(x.dtype)
        v = denoiser(torch.where(given_mask, given, x), t_pos)
        v_given = (x - given) / t_full.clamp_min(torch.finfo(x.dtype).tiny)
        return torch.where(given_mask, v_given, v)

    return denoiser_with_given
