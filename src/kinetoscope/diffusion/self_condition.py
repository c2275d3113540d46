"""Self-conditioning at sampling: the clean estimate of one step fed to the model at the next.

A model trained with self-conditioning (Chen et al. 2022, "Analog Bits", §3) reads, beside the
noisy latent, a clean estimate of it: in training its own no-grad prediction, at sampling the
previous step's. :class:`SelfCondition` carries that estimate between the sampler's calls as two
wrappers: :meth:`~SelfCondition.model` passes it to the model (``self_condition=``, repeated
to a guided call's doubled batch), :meth:`~SelfCondition.denoiser` records the clean estimate
of the final (guided) velocity after each call. The sampler stays a plain function.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from kinetoscope.diffusion.flow import Denoiser, predict_x0


class SelfCondition:
    """The clean estimate ``"b c t h w"`` of the latest denoiser call (None before the first)."""

    def __init__(self) -> None:
        self.estimate: Tensor | None = None

    def model(self, model: Callable[..., Tensor]) -> Callable[..., Tensor]:
        """``model(x, t, **kwargs)`` called with ``self_condition=`` the current estimate."""

        def call(x: Tensor, t: Tensor, **kwargs) -> Tensor:
            estimate = self.estimate
            if estimate is not None and estimate.shape[0] != x.shape[0]:  # guidance's [cond; uncond] batch
                estimate = estimate.repeat(x.shape[0] // estimate.shape[0], *([1] * (estimate.ndim - 1)))
            return model(x, t, self_condition=estimate, **kwargs)

        return call

    def denoiser(self, denoiser: Denoiser) -> Denoiser:
        """``denoiser`` that also keeps the clean estimate of each velocity it returns."""

        def call(x: Tensor, t: Tensor) -> Tensor:
            v = denoiser(x, t)
            self.estimate = predict_x0(x, v, t)
            return v

        return call
