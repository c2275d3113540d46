"""Reading a transformer's video-to-text attention: queries and keys of every block, as computed.

The fused attention kernels never form the attention probabilities, so a tap hooks each block's
text-reading layer (the joint self-attention, or the cross-attention) and recomputes its queries
and keys with the layer's own :meth:`project`, in the forward graph: an evaluation reads them
(``evaluation.word_attention``) and a training loss can push on them (``training.grounding``).
"""

from __future__ import annotations

from torch import Tensor, nn

from kinetoscope.transformer.attention import attention_weights


class AttentionTap:
    """Context manager: while open, each forward of ``transformer`` appends, per block, its
    ``(q, k, mask)`` (``"b h n e"``, ``"b h m e"``, the layer's bool mask or None) to ``records``."""

    def __init__(self, transformer: nn.Module) -> None:
        self.joint = transformer.config.text_conditioning == "joint"
        self.layers = [block.attn if self.joint else block.cross_attn for block in transformer.blocks]
        self.records: list[tuple[Tensor, Tensor, Tensor | None]] = []
        self.handles: list = []

    def _hook(self, module: nn.Module, args: tuple, output: Tensor) -> None:
        x, other, mask = (*args, None)[:3]  # joint: (tokens, rope freqs, mask); cross: (video, text, mask)
        q, k, _ = module.project(x, other)
        self.records.append((q, k, mask))

    def __enter__(self) -> AttentionTap:
        self.records = []
        self.handles = [layer.register_forward_hook(self._hook) for layer in self.layers]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def video_to_text(self, video_tokens: int) -> list[tuple[Tensor, Tensor, Tensor | None]]:
        """Per block: the video tokens' queries ``"b h n e"``, the text tokens' keys ``"b h l e"`` and
        the mask between them (``"b 1 n l"``, broadcastable, or None), for ``video_tokens`` = n per row
        (joint mode: the sequence is text first, then video)."""
        if not self.joint:
            return self.records
        n = video_tokens
        return [(q[:, :, -n:], k[:, :, :-n], None if m is None else m[..., -n:, :-n]) for q, k, m in self.records]

    def video_to_text_probabilities(self, video_tokens: int) -> list[Tensor]:
        """Per block, the video tokens' attention probabilities over the text tokens ``"b h n l"``,
        normalised over every key they may attend to (joint mode: the video tokens too)."""
        probabilities = []
        for q, k, mask in self.records:
            p = attention_weights(q.float(), k.float(), mask)
            probabilities.append(p[:, :, -video_tokens:, :-video_tokens] if self.joint else p)
        return probabilities
