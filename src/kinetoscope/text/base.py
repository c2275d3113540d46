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


class TextEncoder(Protocol):
    """Prompts to token embeddings; ``dim`` is the width of ``hidden``."""

    dim: int

    def encode(self, prompts: Sequence[str], device: torch.device | str | None = None) -> TextEmbeddings: ...
