"""The transformer block (adaLN-single modulated attention + MLP) and the final layer.

Modulation follows DiT (Peebles & Xie 2023, §3.2 "adaLN-Zero"): a parameter-free LayerNorm,
then ``x * (1 + scale) + shift``, and each residual branch multiplied by a gate. Shift, scale
and gate come per token (``"b n 6 d"``) or per sample (``"b 1 6 d"``), so given frames at
t = 0 and noisy frames at t > 0 are modulated differently inside one clip.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kinetoscope.transformer.attention import CrossAttention, SelfAttention
from kinetoscope.transformer.config import DiTConfig


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """``x * (1 + scale) + shift`` in one fused pass."""
    return torch.addcmul(shift, x, 1 + scale)


class FeedForward(nn.Module):
    """Two Linears with a tanh-GELU between them (as Wan, LTX, PixArt)."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: Tensor) -> Tensor:
        """``"b n d" -> "b n d"``."""
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class DiTBlock(nn.Module):
    """One block: modulated self-attention, then (cross mode) cross-attention to text, then a modulated MLP.

    In joint mode the text tokens ride in the same self-attention and MLP (shared weights, a
    single-stream MMDiT block) with their own modulation table. Text is clean input, like
    given frames at t = 0, so its modulation does not depend on the diffusion time; text
    tokens still see the noise level through attention to the video tokens.
    """

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        d, eps = config.width, config.norm_eps
        self.eps = eps
        self.joint = config.text_conditioning == "joint"
        self.attn = SelfAttention(d, config.heads, eps)
        self.mlp = FeedForward(d, config.mlp_width)
        # adaLN-single's per-block table, added to the shared time modulation. Zeros (with the
        # shared Linear also zero) make every gate 0 at init, so each block starts as the
        # identity: the network begins as "patch embed -> final layer" and grows depth as the
        # gates open. DiT (§3.2, Fig. 5) found this adaLN-Zero init clearly beats plain adaLN.
        self.modulation = nn.Parameter(torch.zeros(6, d))
        if self.joint:
            self.text_modulation = nn.Parameter(torch.zeros(6, d))
        else:
            self.cross_norm = nn.LayerNorm(d, eps=eps)
            self.cross_attn = CrossAttention(d, config.heads, eps)

    def _norm(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, x.shape[-1:], eps=self.eps)

    def forward(
        self,
        x: Tensor,
        text: Tensor,
        modulation: Tensor,
        freqs: Tensor,
        self_mask: Tensor | None = None,
        cross_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Update video tokens ``x`` ``"b n d"`` and (joint mode) text tokens ``"b l d"``.

        ``modulation`` is the shared time modulation ``"b n 6 d"`` or ``"b 1 6 d"``;
        ``freqs`` are the RoPE rotations of the attended sequence (``"b (l+n) (e/2)"`` in joint
        mode, text first).
        """
        shift1, scale1, gate1, shift2, scale2, gate2 = (modulation + self.modulation).unbind(-2)
        if not self.joint:
            h = modulate(self._norm(x), shift1, scale1)                                          # b n d
            x = torch.addcmul(x, gate1, self.attn(h, freqs, self_mask))                          # b n d
            x = x + self.cross_attn(self.cross_norm(x), text, cross_mask)                        # b n d
            h = modulate(self._norm(x), shift2, scale2)                                          # b n d
            return torch.addcmul(x, gate2, self.mlp(h)), text

        t_shift1, t_scale1, t_gate1, t_shift2, t_scale2, t_gate2 = self.text_modulation.unbind(0)
        l = text.shape[1]
        h = torch.cat(
            (modulate(self._norm(text), t_shift1, t_scale1), modulate(self._norm(x), shift1, scale1)), dim=1
        )                                                                                    # b (l n) d
        a = self.attn(h, freqs, self_mask)                                                   # b (l n) d
        text = torch.addcmul(text, t_gate1, a[:, :l])                                            # b l d
        x = torch.addcmul(x, gate1, a[:, l:])                                                    # b n d
        h = torch.cat(
            (modulate(self._norm(text), t_shift2, t_scale2), modulate(self._norm(x), shift2, scale2)), dim=1
        )                                                                                    # b (l n) d
        m = self.mlp(h)                                                                      # b (l n) d
        return torch.addcmul(x, gate2, m[:, l:]), torch.addcmul(text, t_gate2, m[:, :l])


class FinalLayer(nn.Module):
    """Modulated LayerNorm and a Linear back to patch tokens ``"b n d" -> "b n (c pt ph pw)"``.

    Shift and scale are a learned ``2 x d`` table plus the time embedding itself (PixArt's
    ``T2IFinalLayer``, Wan's output head): adaLN-single needs no Linear here either.
    """

    def __init__(self, width: int, token_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.modulation = nn.Parameter(torch.zeros(2, width))
        self.linear = nn.Linear(width, token_dim)

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        """``x`` ``"b n d"``, ``temb`` ``"b n d"`` or ``"b 1 d"``."""
        shift, scale = (temb[..., None, :] + self.modulation).unbind(-2)                       # b n|1 d
        return self.linear(modulate(F.layer_norm(x, x.shape[-1:], eps=self.eps), shift, scale))
