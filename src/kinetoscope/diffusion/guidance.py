"""Classifier-free guidance (Ho & Salimans 2022) as a wrapper that returns a new denoiser.

The model is trained with its conditioning sometimes dropped; at sampling the velocity is
pushed away from the unconditional prediction: ``v = v_uncond + s (v_cond - v_uncond)``.
Conditioning is bound here, outside the sampler, as keyword arguments of the model call.
A large scale overshoots: the guided prediction's spread grows past anything the model saw
in training. ``rescale`` (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps
are Flawed", §3.4; diffusers' ``guidance_rescale``) pulls it back toward the conditional
prediction's. ``interval`` (Kynkäänniemi et al. 2024, "Applying Guidance in a Limited Interval
Improves Sample and Distribution Quality in Diffusion Models") guides only the steps whose time
lies inside it and makes one conditional call at the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from kinetoscope.diffusion.flow import Denoiser


def classifier_free_guidance(v_cond: Tensor, v_uncond: Tensor, scale: float) -> Tensor:
    """Combine two velocities: ``v_uncond + scale * (v_cond - v_uncond)`` (Ho & Salimans 2022, eq. 6).

    ``scale = 1`` is the conditional prediction, ``0`` the unconditional one.
    """
    return v_uncond + scale * (v_cond - v_uncond)


def rescale_guidance(v_guided: Tensor, v_cond: Tensor, rescale: float) -> Tensor:
    """Blend ``v_guided`` with itself scaled to ``v_cond``'s standard deviation (per sample).

    ``rescale = 0`` leaves it as is, ``1`` matches the spread exactly (Lin et al. 2024, eq. 15-16).
    As in diffusers' ``rescale_noise_cfg`` (used by its flow-matching LTX pipelines), it acts
    on the model's output, here the velocity, with the spread taken over all but dim 0.
    """
    if rescale == 0:
        return v_guided
    dims = list(range(1, v_guided.ndim))
    ratio = v_cond.std(dim=dims, keepdim=True) / v_guided.std(dim=dims, keepdim=True).clamp_min(1e-12)
    return v_guided + rescale * (ratio - 1) * v_guided


def check_interval(interval: tuple[float, float] | None) -> None:
    """Raise ValueError unless ``interval`` is None or ``(lo, hi)`` with ``0 <= lo < hi <= 1``."""
    if interval is None:
        return
    if len(interval) != 2 or not 0 <= interval[0] < interval[1] <= 1:
        raise ValueError(f"guidance interval must be (lo, hi) with 0 <= lo < hi <= 1, got {tuple(interval)}")


def _batchable(cond: Mapping[str, Any], uncond: Mapping[str, Any]) -> bool:
    """True when the two kwarg sets differ only in tensor values of equal shapes."""
    if cond.keys() != uncond.keys():
        return False
    for key, a in cond.items():
        b = uncond[key]
        if isinstance(a, Tensor) != isinstance(b, Tensor):
            return False
        if isinstance(a, Tensor):
            if a.shape != b.shape or a.dtype != b.dtype or a.ndim == 0:
                return False
        elif a is not b:
            try:
                if not bool(a == b):
                    return False
            except (RuntimeError, TypeError, ValueError):  # e.g. lists of tensors
                return False
    return True


def cfg_denoiser(
    model: Callable[..., Tensor],
    cond: Mapping[str, Any],
    uncond: Mapping[str, Any],
    scale: float,
    rescale: float = 0.0,
    interval: tuple[float, float] | None = None,
) -> Denoiser:
    """Guide ``model(x, t, **kwargs) -> v`` between two sets of conditioning kwargs.

    ``cond`` and ``uncond`` are keyword arguments (text embeddings, masks, ...) for the
    conditional and unconditional calls. When their tensors have equal shapes (and the other
    values are equal) the two calls run as one batch of ``2b``, with every tensor kwarg
    concatenated on dim 0, so it must be batch-first; otherwise they run as two calls. With
    ``scale == 1`` only the conditional call runs. ``rescale`` in [0, 1] is
    :func:`rescale_guidance`'s. ``interval = (lo, hi)`` guides the steps whose time (the largest
    in ``t``: given tokens sit at 0) is in ``[lo, hi]``; the others are the conditional call alone.
    """
    if not 0 <= rescale <= 1:
        raise ValueError(f"rescale must be in [0, 1], got {rescale}")
    check_interval(interval)
    cond, uncond = dict(cond), dict(uncond)
    batched = _batchable(cond, uncond)
    lo, hi = interval if interval is not None else (0.0, 1.0)

    def denoiser(x: Tensor, t: Tensor) -> Tensor:
        # Compared in t's dtype, so an interval's end written as 0.8 holds a float32 step at 0.8.
        if scale == 1 or (interval is not None and not bool((t.max() >= lo) & (t.max() <= hi))):
            return model(x, t, **cond)
        if not batched:
            v_cond = model(x, t, **cond)
            return rescale_guidance(classifier_free_guidance(v_cond, model(x, t, **uncond), scale), v_cond, rescale)
        kwargs = {
            key: torch.cat([value, uncond[key]]) if isinstance(value, Tensor) else value
            for key, value in cond.items()
        }
        # A t that broadcasts over the batch (leading dim 1, or a scalar) needs no copy.
        t2 = torch.cat([t, t]) if t.ndim > 0 and t.shape[0] == x.shape[0] else t
        v_cond, v_uncond = model(torch.cat([x, x]), t2, **kwargs).chunk(2)
        return rescale_guidance(classifier_free_guidance(v_cond, v_uncond, scale), v_cond, rescale)

    return denoiser
