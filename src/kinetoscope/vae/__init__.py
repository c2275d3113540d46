"""The causal 3D VAE: video pixels to a compact spacetime latent and back.

``CausalVideoVAE(CausalVAEConfig())`` builds the shipped size; ``PRESETS`` names the others.
"""

from kinetoscope.vae.config import PRESETS, CausalVAEConfig
from kinetoscope.vae.distribution import DiagonalGaussian
from kinetoscope.vae.model import CausalVideoVAE, VAEOutput

__all__ = ["PRESETS", "CausalVAEConfig", "CausalVideoVAE", "DiagonalGaussian", "VAEOutput"]
