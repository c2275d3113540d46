"""3D rotary position embedding over (t, h, w) patch coordinates.

RoPE (Su et al. 2021, "RoFormer", eq. 34) rotates each pair of query/key channels by an angle
proportional to the token's position, so a query-key dot product depends on the positions only
through their difference. For video, each head's channels are split into three parts that
rotate with the frame, row and column index respectively (CogVideoX-5B, Wan, Open-Sora 1.3).
Angles are computed from integer positions on the fly, with no table of a fixed size, so any
duration, resolution or aspect ratio works, and packed clips simply restart at (0, 0, 0).

Rotations are complex multiplications (as Llama and Flux write them): channels ``2i, 2i + 1``
are the real and imaginary part of one complex number, so a rotation is one fused kernel.
"""

from __future__ import annotations

import torch
from torch import Tensor


def rope_axes(head_dim: int) -> tuple[int, int, int]:
    """Channels of a head given to (t, h, w): h and w get ``2 * (head_dim // 6)`` each, t the rest.

    This is Wan's split (44/42/42 for 128; 24/20/20 for 64): time gets at least a third,
    since temporal coherence is what a video model must learn beyond an image model.
    """
    if head_dim % 2 or head_dim < 6:
        raise ValueError(f"head_dim must be even and at least 6 for 3D RoPE, got {head_dim}")
    hw = 2 * (head_dim // 6)
    return head_dim - 2 * hw, hw, hw


def rope_frequencies(positions: Tensor, head_dim: int, theta: float = 10000.0) -> Tensor:
    """Unit complex rotations ``"b n (e/2)"`` (complex64) for ``"b n 3"`` integer (t, h, w) positions.

    The first ``e_t/2`` channel pairs turn with t, the next ``e_h/2`` with h, the last ``e_w/2``
    with w, each axis with its own geometric ladder of frequencies ``theta^(-2k/e_axis)``.
    """
    if positions.ndim != 3 or positions.shape[-1] != 3:
        raise ValueError(f"positions must be 'b n 3' (t, h, w), got shape {tuple(positions.shape)}")
    angles = []
    for axis, dim in enumerate(rope_axes(head_dim)):
        exponent = torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim
        inv_freq = theta**-exponent                                                              # dim/2
        angles.append(positions[..., axis, None].float() * inv_freq)                         # b n dim/2
    angle = torch.cat(angles, dim=-1)                                                          # b n e/2
    return torch.polar(torch.ones_like(angle), angle)


def apply_rope(x: Tensor, freqs: Tensor) -> Tensor:
    """Rotate queries or keys ``"b n ... e"`` by ``freqs`` ``"b n (e/2)"`` from :func:`rope_frequencies`.

    Any dims between ``n`` and ``e`` (heads; q and k stacked) share the rotation. Computed in
    float32 (bf16 angles lose relative positions beyond a few hundred) and cast back to ``x``'s
    dtype.
    """
    pairs = torch.view_as_complex(x.float().contiguous().unflatten(-1, (-1, 2)))           # b n ... e/2
    freqs = freqs.reshape(*freqs.shape[:2], *[1] * (x.ndim - 3), freqs.shape[-1])
    return torch.view_as_real(pairs * freqs).flatten(-2).to(x.dtype)                         # b n ... e
