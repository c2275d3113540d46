"""Multi-head attention with QK RMSNorm, and the masks that keep packed clips apart.

Both layers call ``torch.nn.functional.scaled_dot_product_attention``, which picks the fused
kernel for the device (flash or memory-efficient on CUDA, a flash-style kernel on CPU). QK
RMSNorm (Dehghani et al. 2023, ViT-22B; used by SD3, Flux, Wan, LTX) bounds attention logits,
which keeps bf16 training stable (Open-Sora 1.2 trains with Adam eps 1e-15 because of it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from kinetoscope.patches import PADDING, attention_mask
from kinetoscope.transformer.rope import apply_rope


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """RMSNorm over the last dim of ``x`` (one head's channels), times ``weight``; float32 out.

    Written out rather than ``F.rms_norm``, which on CPU decomposes into pow, mean, rsqrt and two
    multiplications (plus a copy of strided heads); this is one fused norm reduction and two
    multiplications over the full tensor.
    """
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=torch.float32)
    inv_rms = torch.rsqrt(norm.square() / x.shape[-1] + eps)
    return x * inv_rms * weight


class SelfAttention(nn.Module):
    """Self-attention over all tokens of a row, with 3D RoPE on queries and keys."""

    def __init__(self, width: int, heads: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.heads, self.eps = heads, eps
        self.qkv = nn.Linear(width, 3 * width)
        self.qk_scale = nn.Parameter(torch.ones(2, 1, width // heads))  # RMSNorm gains of q and k
        self.out = nn.Linear(width, width)

    def project(self, x: Tensor, freqs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys (normalised and rotated) and values ``"b h n e"`` of ``x`` ``"b n d"``."""
        qkv = rearrange(self.qkv(x), "b n (three h e) -> b n three h e", three=3, h=self.heads)
        # q and k are normalised and rotated together: half the kernel launches.
        qk = apply_rope(rms_norm(qkv[:, :, :2], self.qk_scale, self.eps), freqs)             # b n 2 h e
        q, k = rearrange(qk.to(x.dtype), "b n two h e -> two b h n e", two=2)
        return q, k, rearrange(qkv[:, :, 2], "b n h e -> b h n e")

    def forward(self, x: Tensor, freqs: Tensor, mask: Tensor | None = None) -> Tensor:
        """``"b n d" -> "b n d"``; ``freqs`` ``"b n (e/2)"`` complex, ``mask`` bool ``"b 1 n n"`` or None."""
        q, k, v = self.project(x, freqs)                                                       # b h n e
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)                          # b h n e
        return self.out(rearrange(out, "b h n e -> b n (h e)"))                                  # b n d


class CrossAttention(nn.Module):
    """Video tokens (queries) attend to text tokens (keys and values); no positions on either."""

    def __init__(self, width: int, heads: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.heads, self.eps = heads, eps
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.q_scale = nn.Parameter(torch.ones(width // heads))  # RMSNorm gain of q
        self.k_scale = nn.Parameter(torch.ones(width // heads))  # RMSNorm gain of k
        self.out = nn.Linear(width, width)

    def project(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries ``"b h n e"`` of ``x``, keys and values ``"b h l e"`` of ``context`` (normalised q and k)."""
        q = rearrange(self.q(x), "b n (h e) -> b h n e", h=self.heads)
        k, v = rearrange(self.kv(context), "b l (two h e) -> two b h l e", two=2, h=self.heads)
        return rms_norm(q, self.q_scale, self.eps).to(x.dtype), rms_norm(k, self.k_scale, self.eps).to(x.dtype), v

    def forward(self, x: Tensor, context: Tensor, mask: Tensor | None = None) -> Tensor:
        """``"b n d", "b l d" -> "b n d"``; ``mask`` bool ``"b 1 n l"`` or ``"b 1 1 l"`` or None."""
        q, k, v = self.project(x, context)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)                          # b h n e
        return self.out(rearrange(out, "b h n e -> b n (h e)"))                                  # b n d


def attention_weights(q: Tensor, k: Tensor, mask: Tensor | None = None) -> Tensor:
    """The probabilities ``"b h n m"`` that ``scaled_dot_product_attention(q, k, v, attn_mask=mask)``
    averages values with, for looking at them (the fused kernels never form them)."""
    logits = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5                                   # b h n m
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    return logits.softmax(dim=-1)


@dataclass
class AttentionMasks:
    """Boolean SDPA masks (True = may attend) for one forward pass; None means attend to all.

    ``self_mask`` is ``"b 1 n n"`` (``"b 1 (l+n) (l+n)"`` in joint mode, text first);
    ``cross_mask`` is ``"b 1 n l"`` or ``"b 1 1 l"``.
    """

    self_mask: Tensor | None
    cross_mask: Tensor | None


def build_masks(
    segment_ids: Tensor | None,
    text_mask: Tensor | None,
    text_segment_ids: Tensor | None,
    joint: bool,
    sizes: tuple[int, int, int],
    device: torch.device,
) -> AttentionMasks:
    """The masks for video ``segment_ids`` ``"b n"`` and text ``"b l"`` validity and segments.

    ``sizes`` is ``(b, n, l)``. ``segment_ids=None`` means one clip per row and no padding;
    ``text_segment_ids=None`` means the row's text belongs to its only clip. Masks are dropped
    whenever nothing would be masked, because SDPA without a mask takes a faster path. Every
    clip needs at least one valid text token, or its queries get an all-False row in cross
    mode (NaN on some backends).
    """
    b, n, l = sizes
    text_valid = text_mask
    if text_segment_ids is not None:
        labelled = text_segment_ids != PADDING
        text_valid = labelled if text_valid is None else text_valid & labelled
    packed = segment_ids is not None and not bool((segment_ids == 0).all())
    if packed and text_segment_ids is None and bool((segment_ids > 0).any()):
        raise ValueError(
            "rows hold several clips (segment ids > 0) but text_segment_ids is None: pack the "
            "text with kinetoscope.patches.pack_sequences so each clip sees its own prompt"
        )
    text_padded = text_valid is not None and not bool(text_valid.all())
    if not packed and not text_padded:
        return AttentionMasks(None, None)

    video_seg = segment_ids if segment_ids is not None else torch.zeros(b, n, dtype=torch.long, device=device)
    text_seg = text_segment_ids if text_segment_ids is not None else video_seg.new_zeros(b, l)
    if text_valid is not None:
        text_seg = torch.where(text_valid, text_seg, PADDING)
    if joint:
        joint_seg = torch.cat((text_seg, video_seg), dim=1)                                    # b (l n)
        return AttentionMasks(attention_mask(joint_seg, joint_seg), None)
    self_mask = attention_mask(video_seg, video_seg) if packed else None                       # b 1 n n
    if packed and text_segment_ids is not None:
        cross_mask = attention_mask(video_seg, text_seg)                                       # b 1 n l
    elif text_padded:
        cross_mask = text_seg[:, None, None, :] != PADDING                                     # b 1 1 l
    else:
        cross_mask = None
    return AttentionMasks(self_mask, cross_mask)
