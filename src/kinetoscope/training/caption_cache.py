"""Text states of a frozen encoder, computed once per distinct caption for a whole training run."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from kinetoscope.text import TextEmbeddings, TextEncoder


class CaptionCache:
    """A frozen text encoder that encodes each distinct caption once and keeps its states on ``device``.

    Training captions come from a finite set, so after the first steps no batch runs the
    encoder. Each caption is encoded alone: its states then do not depend on which captions
    shared its batch (padding), and a resumed run reproduces an uninterrupted one exactly.
    """

    def __init__(self, encoder: TextEncoder, device: torch.device) -> None:
        self.encoder = encoder
        self.dim = encoder.dim
        self.device = device
        self.states: dict[str, torch.Tensor] = {}  # caption -> its real tokens' states "l d"

    def encode(self, prompts: Sequence[str], device: torch.device | str | None = None) -> TextEmbeddings:
        """States ``"b l d"`` (zero at padding) and mask ``"b l"`` of ``prompts``, on ``device``."""
        for prompt in prompts:
            if prompt not in self.states:
                # fp32 states whatever autocast the step runs under, as the pipeline computes them.
                with torch.autocast(self.device.type, enabled=False):
                    text = self.encoder.encode([prompt], self.device)
                self.states[prompt] = text.hidden[0][text.mask[0]]                                    # l d
        states = [self.states[p] for p in prompts]
        hidden = pad_sequence(states, batch_first=True)                                             # b l d
        lengths = torch.tensor([len(s) for s in states], device=self.device)
        mask = torch.arange(hidden.shape[1], device=self.device) < lengths[:, None]                   # b l
        return TextEmbeddings(hidden, mask).to(device if device is not None else self.device)
