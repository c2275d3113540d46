"""Rectified flow: the one place that fixes the diffusion convention.

Convention (Liu et al. 2022, "Flow Straight and Fast: Learning to Generate and Transfer Data
with Rectified Flow"; Esser et al. 2024, "Scaling Rectified Flow Transformers for
High-Resolution Image Synthesis" (SD3), §3):

* time ``t`` runs over [0, 1]; ``t = 0`` is data, ``t = 1`` is pure Gaussian noise;
* the path is straight: ``x_t = (1 - t) * x0 + t * noise``;
* the network predicts the velocity ``v = dx_t/dt = noise - x0``, trained with plain MSE;
* sampling integrates ``dx/dt = v`` from t = 1 down to t = 0.

This is diffusers' ``FlowMatchEulerDiscreteScheduler`` with ``sigma = t`` (its model timestep
is ``1000 * t``; ours is ``t`` itself).

Time shapes. ``t`` is either ``"b"`` (one time per sample) or a tensor with the same number
of dims as ``x`` that broadcasts against it: ``"b 1 t 1 1"`` per latent frame, ``"b n 1"`` per
packed token, or ``x``'s full shape per element. Per-position times let given frames sit at
``t = 0`` while the rest is noised (image-to-video, extension). A :data:`Denoiser` receives
``t`` in one of these forms and returns the velocity with ``x``'s shape.

Training times are logit-normal (SD3 §3.1) and, for larger inputs, shifted towards noise
with ``t' = s t / (1 + (s - 1) t)`` (SD3 §5.3.2): more tokens carry more redundant signal, so
the same t destroys less information and the schedule must spend more time at high noise.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor


class Denoiser(Protocol):
    """A velocity predictor ``(x, t) -> v`` with conditioning already bound (``functools.partial``)."""

    def __call__(self, x: Tensor, t: Tensor) -> Tensor: ...


def expand_t(t: Tensor | float, x: Tensor) -> Tensor:
    """Give ``t`` (``"b"``, a scalar, or ``x``'s ndim) a shape that broadcasts against ``x``."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0 or t.ndim == x.ndim:
        return t
    if t.ndim == 1 and t.shape[0] == x.shape[0]:
        return t.reshape(-1, *([1] * (x.ndim - 1)))
    raise ValueError(
        f"t of shape {tuple(t.shape)} does not fit x of shape {tuple(x.shape)}: "
        "pass 'b' or a tensor with x's number of dims"
    )


def add_noise(x0: Tensor, noise: Tensor, t: Tensor | float) -> Tensor:
    """The forward path ``x_t = (1 - t) x0 + t noise`` (Liu et al. 2022, eq. 1)."""
    t = expand_t(t, x0)
    return (1 - t) * x0 + t * noise


def velocity_target(x0: Tensor, noise: Tensor) -> Tensor:
    """The regression target ``v = noise - x0``, the path's constant time derivative."""
    return noise - x0


def predict_x0(x_t: Tensor, v: Tensor, t: Tensor | float) -> Tensor:
    """Clean data implied by a velocity: ``x0 = x_t - t v``."""
    return x_t - expand_t(t, x_t) * v


def predict_noise(x_t: Tensor, v: Tensor, t: Tensor | float) -> Tensor:
    """Noise implied by a velocity: ``noise = x_t + (1 - t) v``."""
    return x_t + (1 - expand_t(t, x_t)) * v


def timestep_shift(t: Tensor, shift: float) -> Tensor:
    """SD3's shift ``t' = s t / (1 + (s - 1) t)`` (Esser et al. 2024, §5.3.2).

    Monotone, fixes 0 and 1, and ``s > 1`` moves every t towards noise. It equals diffusers'
    exponential time shift with ``mu = log(s)``.
    """
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}")
    return shift * t / (1 + (shift - 1) * t)


def shift_for_tokens(
    num_tokens: int,
    *,
    base_tokens: int = 256,
    base_shift: float = 1.0,
    max_tokens: int = 4096,
    max_shift: float = 3.0,
) -> float:
    """A shift that grows with the number of tokens a clip has.

    ``log(shift)`` is linear in the token count between ``(base_tokens, log base_shift)`` and
    ``(max_tokens, log max_shift)`` and held at the ends outside that range; this is diffusers'
    ``calculate_shift`` (Flux, LTX) on ``mu = log(shift)``, clamped so tiny or huge inputs do
    not extrapolate. The defaults follow SD3 §5.3.2: no shift at 256 tokens (256² px), 3.0 at
    4096 (1024² px). Passing one clip's token count covers both resolution and duration,
    which Open-Sora 1.2 shifts for separately.
    """
    if not 0 < base_tokens < max_tokens:
        raise ValueError(f"need 0 < base_tokens < max_tokens, got {base_tokens} and {max_tokens}")
    if base_shift <= 0 or max_shift <= 0:
        raise ValueError(f"shifts must be positive, got {base_shift} and {max_shift}")
    frac = (num_tokens - base_tokens) / (max_tokens - base_tokens)
    frac = min(max(frac, 0.0), 1.0)
    return math.exp(math.log(base_shift) + frac * (math.log(max_shift) - math.log(base_shift)))


def sample_timesteps(
    shape: int | tuple[int, ...],
    generator: torch.Generator | None = None,
    *,
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    shift: float = 1.0,
    device: torch.device | str | None = None,
) -> Tensor:
    """Training times: logit-normal ``t = sigmoid(m + s * z)`` (SD3 §3.1, eq. 19), then shifted.

    Returns float32 values in (0, 1) of ``shape`` (an int gives ``"b"``). The median is
    ``timestep_shift(sigmoid(logit_mean), shift)``. ``device`` defaults to the generator's.
    """
    if logit_std <= 0:
        raise ValueError(f"logit_std must be positive, got {logit_std}")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if device is None and generator is not None:
        device = generator.device
    z = torch.randn(shape, generator=generator, device=device)
    return timestep_shift(torch.sigmoid(logit_mean + logit_std * z), shift)


def flow_loss(v_pred: Tensor, v_target: Tensor, loss_mask: Tensor | None = None, *, per_sample: bool = False) -> Tensor:
    """MSE between predicted and target velocity, averaged over the elements the mask keeps.

    ``loss_mask`` (bool or 0/1, broadcastable to ``v_pred``) is True where the loss counts:
    leave out padding tokens and given (clean) frames. With nothing kept the loss is 0.
    ``per_sample`` averages each sample (dim 0) on its own, ``"b ..."`` -> ``"b"``, for losses
    that compare clips (training.binding); by default the batch is one mean.
    Computed in float32 so a bf16 forward pass does not round the mean.
    """
    sq = (v_pred.float() - v_target.float()).square()
    if loss_mask is None:
        return sq.flatten(1).mean(1) if per_sample else sq.mean()
    weight = loss_mask.to(sq.dtype).expand_as(sq)  # bool, or float weights (motion_weights)
    if per_sample:
        return (sq * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1.0)
    return (sq * weight).sum() / weight.sum().clamp_min(1.0)


def motion_weights(x0: Tensor, strength: float) -> Tensor:
    """Loss weights ``"b 1 t h w"`` that grow where the clean latent changes between frames.

    ``1 + strength * |x0[k] - x0[k-1]|`` (mean over channels; frame 0 uses frame 1's change).
    What a prompt says about motion decides only the few positions a moving object passes
    through, a small share of the plain MSE; on the Shapes World a DiT trained without this
    weighting learnt colour, size and background from the text but not direction (swapping
    "left" and "right" in its captions left its loss unchanged to four decimals).
    Static clips keep weights near 1. ``x0`` is ``"b c t h w"``; one frame gives all ones.
    """
    if x0.shape[2] < 2 or strength == 0:
        return torch.ones_like(x0[:, :1])
    change = (x0[:, :, 1:] - x0[:, :, :-1]).abs().mean(dim=1, keepdim=True)                # b 1 (t-1) h w
    change = torch.cat((change[:, :, :1], change), dim=2)                                       # b 1 t h w
    return 1.0 + strength * change
