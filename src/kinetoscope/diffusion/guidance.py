"""Classifier-free guidance (Ho & Salimans 2022) as a wrapper that returns a new denoiser.

The model is trained with its conditioning sometimes dropped; at sampling the velocity is
pushed away from the unconditional prediction: ``v = v_uncond + s (v_cond - v_uncond)``.
Conditioning is bound here, outside the sampler, as keyword arguments of the model call.
A large scale overshoots: the guided prediction's spread grows past anything the model saw
in training. ``rescale`` (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps
are Flawed", §3.4; diffusers' ``guidance_rescale``) pulls it back toward the conditional
prediction's. ``interval`` (Kynkäänniemi et al. 2024, "Applying Guidance in a Limited Interval
Improves Sample and Distribution Quality in Diffusion Models") guides only the steps whose time
lies inside it and makes one conditional call at the others. Contrasts (conditionings the video
must not match, each with its weight) add guidance along what sets them apart from the prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    contrasts: Sequence[tuple[Mapping[str, Any], float]] = (),
    contrast_interval: tuple[float, float] | None = None,
) -> Denoiser:
    """Guide ``model(x, t, **kwargs) -> v`` between two sets of conditioning kwargs.

    ``cond`` and ``uncond`` are keyword arguments (text embeddings, masks, ...) for the
    conditional and unconditional calls. When their tensors have equal shapes (and the other
    values are equal) the calls of a step run as one batch, with every tensor kwarg concatenated
    on dim 0, so it must be batch-first; otherwise they run one by one. With ``scale == 1`` only
    the conditional call runs. ``rescale`` in [0, 1] is :func:`rescale_guidance`'s. ``interval =
    (lo, hi)`` guides the steps whose time (the largest in ``t``: given tokens sit at 0) is in
    ``[lo, hi]``; the others are the conditional call alone.

    ``contrasts`` are ``(kwargs, weight)`` pairs, each a conditioning that names what the video
    must *not* be (the caption with its motion reversed): at the steps whose time is in
    ``contrast_interval`` (default: every step) each adds ``weight * (v_cond - v_contrast)``, a
    guidance term along the one difference between the two captions (contrastive guidance; a
    negative prompt with its own weight, beside the unconditional one). A contrast equal to
    ``cond`` adds exactly 0, which is how a batch mixes prompts with and without one.
    """
    if not 0 <= rescale <= 1:
        raise ValueError(f"rescale must be in [0, 1], got {rescale}")
    check_interval(interval)
    check_interval(contrast_interval)
    cond, uncond = dict(cond), dict(uncond)
    others = [dict(kwargs) for kwargs, _ in contrasts]
    weights = [float(w) for _, w in contrasts]
    batched = all(_batchable(cond, other) for other in (uncond, *others))
    lo, hi = interval if interval is not None else (0.0, 1.0)
    c_lo, c_hi = contrast_interval if contrast_interval is not None else (0.0, 1.0)

    def calls(x: Tensor, t: Tensor, sets: list[dict[str, Any]]) -> list[Tensor]:
        if len(sets) == 1:
            return [model(x, t, **sets[0])]
        if not batched:
            return [model(x, t, **kwargs) for kwargs in sets]
        kwargs = {
            key: torch.cat([s[key] for s in sets]) if isinstance(value, Tensor) else value
            for key, value in sets[0].items()
        }
        # A t that broadcasts over the batch (leading dim 1, or a scalar) needs no copy.
        n = len(sets)
        tn = torch.cat([t] * n) if t.ndim > 0 and t.shape[0] == x.shape[0] else t
        return list(model(torch.cat([x] * n), tn, **kwargs).chunk(n))

    def denoiser(x: Tensor, t: Tensor) -> Tensor:
        # Compared in t's dtype, so an interval's end written as 0.8 holds a float32 step at 0.8.
        step = t.max()
        guide = scale != 1 and (interval is None or bool((step >= lo) & (step <= hi)))
        contrast = bool(others) and bool((step >= c_lo) & (step <= c_hi))
        sets = [cond] + ([uncond] if guide else []) + (others if contrast else [])
        v_cond, *rest = calls(x, t, sets)
        v = classifier_free_guidance(v_cond, rest.pop(0), scale) if guide else v_cond
        if contrast:
            for weight, v_contrast in zip(weights, rest, strict=True):
                v = v + weight * (v_cond - v_contrast)
        return rescale_guidance(v, v_cond, rescale) if guide else v

    return denoiser
