"""The VAE posterior: a diagonal Gaussian over latents (Kingma & Welling 2014, arXiv:1312.6114)."""

from __future__ import annotations

import torch


class DiagonalGaussian:
    """``N(mean, exp(logvar))`` per latent value; tensors ``"b l t h w"``.

    Built from the encoder's moments, mean and log-variance stacked on channels. As in diffusers'
    ``DiagonalGaussianDistribution``, the log-variance is clamped to [-30, 20] so that ``exp``
    neither underflows to a zero std nor overflows early in training.
    """

    def __init__(self, moments: torch.Tensor) -> None:
        self.mean, logvar = moments.chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A reparameterised draw ``mean + std * eps`` (differentiable in mean and std)."""
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def mode(self) -> torch.Tensor:
        """The most likely latent: the mean."""
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL divergence to ``N(0, 1)``, summed over every latent value of each sample: shape ``"b"``."""
        kl = 0.5 * (self.mean.pow(2) + self.var - 1.0 - self.logvar)
        return kl.flatten(1).sum(dim=1)
