"""The interface every text encoder offers the pipelines and the trainer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor


@dataclass
class TextEmbeddings:
    """Encoded prompts: ``hidden`` ``"b l d"`` and ``mask`` ``"b l"`` (True for real tokens)."""

    hidden: Tensor
    mask: Tensor

    def to(self, device: torch.device | str) -> TextEmbeddings:
        return TextEmbeddings(self.hidden.to(device), self.mask.to(device))

    def padded_to_multiple(self, multiple: int) -> TextEmbeddings:
        """The same prompts with ``l`` padded up to a multiple of ``multiple`` (zero states, mask
        False): attention ignores them, and a compiled model sees a few text lengths, not one per batch."""
        extra = -self.hidden.shape[1] % multiple
        if not extra:
            return self
        hidden = torch.nn.functional.pad(self.hidden, (0, 0, 0, extra))
        return TextEmbeddings(hidden, torch.nn.functional.pad(self.mask, (0, extra), value=False))


class TextEncoder(Protocol):
    """Prompts to token embeddings; ``dim`` is the width of ``hidden``."""

    dim: int

    def encode(self, prompts: Sequence[str], device: torch.device | str | None = None) -> TextEmbeddings: ...
