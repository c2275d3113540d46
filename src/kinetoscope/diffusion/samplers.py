"""Samplers: stateless functions that integrate the flow ODE ``dx/dt = v(x, t)`` from t = 1 to 0.

In the style of k-diffusion (Crowson): a sampler takes a :class:`~kinetoscope.diffusion.flow.Denoiser`,
the starting noise and a decreasing schedule of times, and returns the sample. Conditioning,
guidance and given frames are bound into the denoiser beforehand, never passed through here.
The denoiser sees ``x`` in at least float32 and the sample comes back in the noise's dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from kinetoscope.diffusion.flow import Denoiser, timestep_shift

StepCallback = Callable[[int, Tensor, Tensor], None]
"""Called after step ``i`` as ``callback(i, t_next, x_next)``: the time reached and x there."""


def sampling_timesteps(
    num_steps: int, shift: float = 1.0, device: torch.device | str | None = None
) -> Tensor:
    """``num_steps + 1`` times from 1 down to 0: evenly spaced, then :func:`timestep_shift`.

    Equal to the sigmas of diffusers' ``FlowMatchEulerDiscreteScheduler(shift=shift)`` after
    ``set_timesteps(sigmas=linspace(1, 1/num_steps, num_steps))``, the schedule its LTX
    pipelines pass (its default ``set_timesteps(n)`` ends at a shifted ``sigma_min`` instead).
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be at least 1, got {num_steps}")
    t = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64)
    return timestep_shift(t, shift).to(device=device, dtype=torch.float32)


def _check(noise: Tensor, timesteps: Tensor) -> None:
    if timesteps.ndim != 1 or timesteps.numel() < 2:
        raise ValueError(f"timesteps must be 1-D with at least 2 values, got {tuple(timesteps.shape)}")
    if bool((timesteps[1:] >= timesteps[:-1]).any()):
        raise ValueError("timesteps must decrease strictly (from noise towards data)")
    if noise.ndim < 1:
        raise ValueError("noise needs a batch dimension")


def _times(timesteps: Tensor, x: Tensor) -> Tensor:
    # The ODE state and times are kept in at least float32 (like diffusers' step): in bf16 the
    # times near 1 round to steps of 1/256 and small updates vanish. Autocast the model instead.
    return timesteps.to(device=x.device, dtype=torch.promote_types(x.dtype, torch.float32))


def _steps(n: int, progress: bool):
    return tqdm(range(n), desc="sampling", leave=False) if progress else range(n)


@torch.no_grad()
def sample_euler(
    denoiser: Denoiser,
    noise: Tensor,
    timesteps: Tensor,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> Tensor:
    """Euler's method on the velocity ODE: ``x <- x + (t_next - t) v(x, t)``.

    The sampler of rectified flow (Liu et al. 2022, §2) and of diffusers'
    ``FlowMatchEulerDiscreteScheduler``; one denoiser call per step. ``timesteps`` is
    decreasing, e.g. from :func:`sampling_timesteps`; the denoiser gets ``t`` as ``"b"``.
    """
    _check(noise, timesteps)
    ts = _times(timesteps, noise)
    x = noise.to(ts.dtype)
    for i in _steps(len(ts) - 1, progress):
        t, t_next = ts[i], ts[i + 1]
        v = denoiser(x, t.expand(x.shape[0]))
        x = x + (t_next - t) * v
        if callback is not None:
            callback(i, t_next, x)
    return x.to(noise.dtype)


@torch.no_grad()
def sample_heun(
    denoiser: Denoiser,
    noise: Tensor,
    timesteps: Tensor,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> Tensor:
    """Heun's 2nd-order method (Karras et al. 2022, "Elucidating the Design Space of
    Diffusion-Based Generative Models", Alg. 1, deterministic) on the velocity ODE.

    Each step takes an Euler step, evaluates the velocity at its end and moves with the
    average of the two slopes. The correction is skipped on the step to ``t = 0`` (as in
    Alg. 1), where the network is never evaluated, so ``n`` steps cost ``2n - 1`` calls when
    the schedule ends at 0.
    """
    _check(noise, timesteps)
    ts = _times(timesteps, noise)
    x = noise.to(ts.dtype)
    correct = (timesteps[1:] > 0).tolist()  # read once: a per-step check would sync a GPU
    for i in _steps(len(ts) - 1, progress):
        t, t_next = ts[i], ts[i + 1]
        dt = t_next - t
        v = denoiser(x, t.expand(x.shape[0]))
        x_euler = x + dt * v
        if correct[i]:
            v_next = denoiser(x_euler, t_next.expand(x.shape[0]))
            x = x + dt * (v + v_next) / 2
        else:
            x = x_euler
        if callback is not None:
            callback(i, t_next, x)
    return x.to(noise.dtype)


@torch.no_grad()
def sample_euler_sde(
    denoiser: Denoiser,
    noise: Tensor,
    timesteps: Tensor,
    callback: StepCallback | None = None,
    progress: bool = False,
    *,
    eta: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """DDIM's stochastic steps (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12) on
    the rectified-flow path ``x_t = (1 - t) x0 + t n``.

    Each step splits ``x`` at time ``t`` into its predicted clean sample ``x0 = x - t v`` and noise
    ``n = x + (1 - t) v``, and moves to the next time ``s`` with part of the noise drawn afresh:
    ``x = (1 - s) x0 + sqrt(s^2 - c^2) n + c z``, ``z`` standard normal, ``c = eta * s * sqrt(1 -
    r^2)`` with ``r = (1 - t) s / ((1 - s) t)``: at ``eta = 1``, ``c`` is the spread of ``x_s``
    given ``x_t`` and ``x0`` on this path (the ancestral sampler, DDPM's), at ``eta = 0`` this is
    :func:`sample_euler` exactly. Renewed noise shrinks with the step, so any ``eta`` samples the
    data distribution as the steps grow. ``z`` is drawn from ``generator`` on its own device and
    moved, so a seed gives the same video on any device.
    """
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    _check(noise, timesteps)
    ts = _times(timesteps, noise)
    x = noise.to(ts.dtype)
    for i in _steps(len(ts) - 1, progress):
        t, s = ts[i], ts[i + 1]
        v = denoiser(x, t.expand(x.shape[0]))
        x0, n = x - t * v, x + (1 - t) * v
        r = (1 - t) * s / ((1 - s) * t)  # < 1 for s < t; 0 on the step to s = 0
        c = eta * s * (1 - r**2).clamp_min(0).sqrt()
        x = (1 - s) * x0 + (s**2 - c**2).clamp_min(0).sqrt() * n
        if eta > 0:
            z = torch.randn(x.shape, generator=generator, device=generator.device if generator else x.device)
            x = x + c * z.to(device=x.device, dtype=x.dtype)
        if callback is not None:
            callback(i, s, x)
    return x.to(noise.dtype)
