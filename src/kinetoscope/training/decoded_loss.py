"""A loss on the DiT's one-step prediction as the VAE decoder draws it, for the low-noise clips of a batch.

Why: the flow loss is an MSE on latents, and the decoder does not weigh latent errors evenly. On
the Shapes World, latents of real clips decode to objects of steady size, while the shipped
DiT's samples decode to objects that shrink in the middle frames of each 4-frame latent group
(the analyzer's most common miss), and real latents merely noised to t = 0.2 and denoised back
already lose a fifth of their all-correct clips. Berrada et al. 2025 ("Boosting Latent
Diffusion with Perceptual Objectives", LPL) add a loss in the decoder's feature space at low
noise for the same reason; this is its simplest form: the decoded pixels of the predicted clean
latent against those of the true one, on a few clips per step (the decoder's backward pass is
the cost), only where ``t`` is low enough for the prediction to be sharp.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def decoded_loss(
    decode: Callable[[Tensor], Tensor],
    x0: Tensor,
    x0_pred: Tensor,
    times: Tensor,
    *,
    max_t: float,
    clips: int,
) -> Tensor:
    """Pixel MSE between ``decode(x0_pred)`` and ``decode(x0)`` over at most ``clips`` clips with ``t < max_t``.

    ``x0`` and ``x0_pred`` are latents ``"b c t h w"``, ``times`` the clips' diffusion times
    ``"b"``; ``decode`` maps latents to pixels (gradients flow through it to ``x0_pred``; the
    target is computed without them). The first qualifying clips are taken: batches are drawn at
    random. With no clip qualifying the loss is a zero that still belongs to the graph.
    """
    chosen = torch.nonzero(times < max_t).flatten()[:clips]
    if chosen.numel() == 0:
        return x0_pred.sum() * 0.0
    with torch.no_grad():
        target = decode(x0[chosen])                                                          # k 3 T H W
    drawn = decode(x0_pred[chosen])                                                          # k 3 T H W
    return (drawn.float() - target.float()).square().mean()
