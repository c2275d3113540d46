"""How much of the prompt a DiT keeps at each noise level: the analyzer on its one-step predictions.

A clip is encoded, noised to time ``t`` and denoised in one step with its own caption
(``x0 = x_t - t * v``, the conditional velocity, no guidance), then decoded and judged like the
VAE's round trips in :mod:`~kinetoscope.evaluation.ceiling`. At ``t = 0`` this is the VAE
ceiling; as ``t`` grows the prediction has less of the clip to go on and leans on the caption.
Even a perfect denoiser predicts the mean of the clips that fit ``x_t`` and the caption, which
blurs as ``t`` grows, so the rows are for comparing models at equal ``t`` (same clips, same
noise), not for reading off where sampling fails. The first Shapes model on vae2 (uniform
starts), 40 one-object clips: all-correct 80 / 72 / 60 / 30 / 5% at t = 0 / 0.3 / 0.5 / 0.7 /
0.8, direction 95 / 95 / 92 / 78 / 52%; two objects 42 / 20 / 8 / 0 / 0%.
"""

from __future__ import annotations

import numpy as np
import torch

from kinetoscope.diffusion import add_noise, predict_x0
from kinetoscope.evaluation.ceiling import Roundtrip


def one_step_roundtrip(pipe, t: float, seed: int = 0) -> Roundtrip:
    """uint8 ``"t h w c"`` frames and their caption to the decoded one-step prediction at time
    ``t`` in [0, 1), as uint8. Every call draws the same noise (``seed``), so rows at several
    ``t`` differ only by the noise level."""
    if not 0 <= t < 1:
        raise ValueError(f"t must lie in [0, 1), got {t}")

    @torch.no_grad()
    def roundtrip(frames: np.ndarray, caption: str) -> np.ndarray:
        num_frames, height, width = frames.shape[:3]
        x0 = pipe.encode(frames)
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed)).to(x0)
        x_t = add_noise(x0, noise, t)
        text = pipe.text_encoder.encode([caption], x0.device)
        v = pipe.transformer(x_t, torch.full((1,), t, device=x0.device), text.hidden, text.mask)
        return pipe.to_frames(pipe.decode(predict_x0(x_t, v, t), num_frames, height, width))[0]

    return roundtrip
