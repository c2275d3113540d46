"""Diffusion math: rectified flow (``flow``), samplers, guidance and given-frame conditioning.

Sees only a denoiser callable ``(x, t) -> velocity``, never a model class; the convention
(t = 0 data, t = 1 noise, velocity ``noise - x0``) is written once, in ``flow``.
"""

from kinetoscope.diffusion.conditioning import conditioned_denoiser, hold_given, sample_with_given, split_timesteps
from kinetoscope.diffusion.flow import (
    Denoiser,
    add_noise,
    expand_t,
    flow_loss,
    motion_weights,
    predict_noise,
    predict_x0,
    sample_timesteps,
    shift_for_tokens,
    timestep_shift,
    velocity_target,
)
from kinetoscope.diffusion.guidance import cfg_denoiser, classifier_free_guidance, rescale_guidance
from kinetoscope.diffusion.samplers import (
    StepCallback,
    sample_euler,
    sample_euler_sde,
    sample_heun,
    sampling_timesteps,
)

__all__ = [
    "Denoiser",
    "StepCallback",
    "add_noise",
    "cfg_denoiser",
    "classifier_free_guidance",
    "rescale_guidance",
    "conditioned_denoiser",
    "expand_t",
    "flow_loss",
    "motion_weights",
    "hold_given",
    "predict_noise",
    "predict_x0",
    "sample_euler",
    "sample_euler_sde",
    "sample_heun",
    "sample_timesteps",
    "sample_with_given",
    "sampling_timesteps",
    "shift_for_tokens",
    "split_timesteps",
    "timestep_shift",
    "velocity_target",
]
