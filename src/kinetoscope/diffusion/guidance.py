"""Classifier-free guidance (Ho & Salimans 2022) as a wrapper that returns a new denoiser.

The model is trained with its conditioning sometimes dropped; at sampling the velocity is
pushed away from the unconditional prediction: ``v = v_uncond + s (v_cond - v_uncond)``.
Conditioning is bound here, outside the sampler, as keyword arguments of the model call.
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
) -> Denoiser:
    """Guide ``model(x, t, **kwargs) -> v`` between two sets of conditioning kwargs.

    ``cond`` and ``uncond`` are keyword arguments (text embeddings, masks, ...) for the
    conditional and unconditional calls. When their tensors have equal shapes (and the other
    values are equal) the two calls run as one batch of ``2b``, with every tensor kwarg
    concatenated on dim 0, so it must be batch-first; otherwise they run as two calls. With
    ``scale == 1`` only the conditional call runs.
    """
    cond, uncond = dict(cond), dict(uncond)
    batched = _batchable(cond, uncond)

    def denoiser(x: Tensor, t: Tensor) -> Tensor:
        if scale == 1:
            return model(x, t, **cond)
        if not batched:
            return classifier_free_guidance(model(x, t, **cond), model(x, t, **uncond), scale)
        kwargs = {
            key: torch.cat([value, uncond[key]]) if isinstance(value, Tensor) else value
            for key, value in cond.items()
        }
        # A t that broadcasts over the batch (leading dim 1, or a scalar) needs no copy.
        t2 = torch.cat([t, t]) if t.ndim > 0 and t.shape[0] == x.shape[0] else t
        v_cond, v_uncond = model(torch.cat([x, x]), t2, **kwargs).chunk(2)
        return classifier_free_guidance(v_cond, v_uncond, scale)

    return denoiser
