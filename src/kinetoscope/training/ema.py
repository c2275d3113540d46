"""Exponential moving average of a model's weights, the weights a training run exports."""

from __future__ import annotations

import torch


class EMA:
    """Exponential moving average of a module's floating-point parameters (Polyak averaging)."""

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: torch.nn.Module, step: int) -> None:
        # Warm-up of the decay (as in TF's ExponentialMovingAverage with num_updates): the
        # average does not stay anchored to the random initialisation for thousands of steps.
        decay = min(self.decay, (1 + step) / (10 + step))
        for key, value in module.state_dict().items():
            if value.dtype.is_floating_point:
                self.shadow[key].lerp_(value, 1 - decay)
            else:
                self.shadow[key].copy_(value)
