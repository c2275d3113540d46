"""Given-frame conditioning (image-to-video, extension, interpolation, editing) as a denoiser wrapper.

Positions marked given are held at their clean values and shown to the model at ``t = 0``,
as in Open-Sora 1.2's frame masks and diffusers' LTX image-to-video (per-token timesteps
``t * (1 - mask)``); the sampler is unchanged. The model is trained the same way: given
positions are left clean with ``t = 0`` and out of the loss (``flow_loss``'s mask).

Positions can also be given only for a while (:func:`sample_with_given`): held until the
sampler reaches a time ``strength``, then noised to that time along the path and sampled with
the rest. With every position released this is SDEdit (Meng et al. 2022, "SDEdit: Guided Image
Synthesis and Editing with Stochastic Differential Equations", §3), per position it is Open-Sora
1.2's edit ratio.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from kinetoscope.diffusion.flow import Denoiser, add_noise, expand_t

Sampler = Callable[..., Tensor]
"""A sampler of :mod:`kinetoscope.diffusion.samplers`: ``(denoiser, x, timesteps, progress=...) -> x``."""


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


def split_timesteps(timesteps: Tensor, t: float) -> tuple[Tensor, Tensor]:
    """A decreasing schedule cut at ``t`` in (0, 1]: the times down to ``t`` and the times from ``t`` on.

    ``t`` ends the first part and starts the second; the second is ``t`` followed by the
    schedule's times below it (so SDEdit at ``t`` runs the steps below ``t``, not a new schedule).
    """
    if not 0 < t <= 1:
        raise ValueError(f"t must be in (0, 1], got {t}")
    cut = torch.tensor([t], dtype=timesteps.dtype, device=timesteps.device)
    return torch.cat([timesteps[timesteps > t], cut]), torch.cat([cut, timesteps[timesteps < t]])


def sample_with_given(
    sampler: Sampler,
    denoiser: Denoiser,
    noise: Tensor,
    timesteps: Tensor,
    x_given: Tensor,
    given_mask: Tensor | None,
    release_mask: Tensor | None = None,
    strength: float = 1.0,
    progress: bool = False,
) -> Tensor:
    """Sample from ``noise`` with positions held at ``x_given``.

    ``given_mask`` positions are held throughout (:func:`conditioned_denoiser`) and come back
    bit for bit. ``release_mask`` positions start at ``x_given`` too and are held while
    ``t > strength``; at ``t = strength`` they move to ``add_noise(x_given, noise, strength)``, the
    point the forward path gives them there, and are sampled from then on. Released
    positions thus keep what survives noise of level ``strength``: ``strength = 1`` frees them
    entirely, a small one changes them little. With nothing free before ``strength`` (SDEdit),
    sampling starts at ``strength``. Masks are bool with ``x``'s ndim and broadcast against it.
    """
    if given_mask is None and release_mask is None:
        raise ValueError("need given_mask, release_mask or both")
    given = given_mask if given_mask is not None else torch.zeros_like(release_mask)
    if release_mask is None:
        x = hold_given(noise, x_given, given)
        x = sampler(conditioned_denoiser(denoiser, x_given, given), x, timesteps, progress=progress)
        # Exact for any sampler: a stochastic one moves held positions between steps (the model
        # sees them clean all the same) and brings them back only up to rounding.
        return hold_given(x, x_given, given)
    if release_mask.dtype != torch.bool or given.dtype != torch.bool:
        raise ValueError(f"masks must be bool, got {given.dtype} and {release_mask.dtype}")
    held = given | release_mask
    upper, lower = split_timesteps(timesteps, strength)
    x = hold_given(noise, x_given, held)
    if len(upper) > 1 and not bool(held.all()):
        x = sampler(conditioned_denoiser(denoiser, x_given, held), x, upper, progress=progress)
    x = torch.where(release_mask, add_noise(x_given, noise, strength).to(x.dtype), x)
    if bool(given.any()):
        denoiser = conditioned_denoiser(denoiser, x_given, given)
    return hold_given(sampler(denoiser, x, lower, progress=progress), x_given, given)
