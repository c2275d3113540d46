"""How any clip maps onto the latent grid, and back.

With temporal compression T, a causal VAE encodes ``1 + T k`` frames into ``1 + k`` latent frames:
the first frame alone, then T frames per latent frame. Any other count ``n`` is padded at the end
by repeating the last frame up to the next ``1 + T k``, so ``n`` frames take
``1 + ceil((n - 1) / T)`` latent frames and the decoder's output is cropped back to ``n``. Frame
sizes are padded likewise to multiples of the spatial compression S (bottom and right edges,
repeated) and cropped back. Repeating, not zeros, because a zero frame in [-1, 1] is a mid-gray
picture: it would put a spurious cut at the end of every clip, and a dark edge on its frames.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def latent_frames(num_frames: int, temporal_compression: int) -> int:
    """Latent frames for ``num_frames >= 1`` pixel frames."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    return 1 + math.ceil((num_frames - 1) / temporal_compression)


def decoded_frames(num_latent_frames: int, temporal_compression: int) -> int:
    """Frames the decoder makes from ``num_latent_frames`` before any crop: ``1 + T (k - 1)``."""
    if num_latent_frames < 1:
        raise ValueError(f"need at least 1 latent frame, got {num_latent_frames}")
    return 1 + temporal_compression * (num_latent_frames - 1)


def latent_size(size: int, spatial_compression: int) -> int:
    """Latent positions along a spatial axis of ``size`` pixels (padded up to a multiple of S)."""
    if size < 1:
        raise ValueError(f"frame height and width must be at least 1, got {size}")
    return math.ceil(size / spatial_compression)


def pad_video(x: torch.Tensor, temporal_compression: int, spatial_compression: int) -> torch.Tensor:
    """Pad ``"b c t h w"`` at the end of t, h and w by repetition, to what the encoder takes."""
    _, _, t, h, w = x.shape
    pad_t = decoded_frames(latent_frames(t, temporal_compression), temporal_compression) - t
    pad_h = latent_size(h, spatial_compression) * spatial_compression - h
    pad_w = latent_size(w, spatial_compression) * spatial_compression - w
    if pad_t == pad_h == pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h, 0, pad_t), mode="replicate")
