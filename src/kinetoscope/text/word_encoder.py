"""The small text encoder trained here: word embeddings and a few transformer layers.

Trained jointly with the diffusion transformer from the diffusion loss alone (as Imagen's and
DALL-E's small-scale ablations train their text towers), it learns exactly the distinctions
the videos need. On this CPU it also keeps ``generate`` fast: it loads in milliseconds, while
importing ``transformers`` for a pretrained encoder costs about 4.4 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from kinetoscope import hub
from kinetoscope.text.base import TextEmbeddings
from kinetoscope.text.tokenizer import SPECIALS, WordTokenizer


@dataclass
class WordTextEncoderConfig:
    """Hyperparameters of :class:`WordTextEncoder`; the vocabulary is part of the config."""

    vocab: tuple[str, ...] = SPECIALS
    """Words, ``("<pad>", "<unk>", "<bos>", ...)``; the trainer builds it from its captions' language."""
    width: int = 128
    depth: int = 2
    heads: int = 4
    max_length: int = 64
    """Tokens per prompt, ``<bos>`` included; longer prompts are cut (a two-object caption is ~25)."""

    def __post_init__(self) -> None:
        self.vocab = tuple(self.vocab)
        for name in ("width", "depth", "heads", "max_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.width % self.heads:
            raise ValueError(f"width={self.width} is not divisible by heads={self.heads}")
        WordTokenizer(self.vocab, self.max_length)  # validates the vocabulary


class WordTextEncoder(nn.Module):
    """Prompts to ``"b l d"`` token states (``d = config.width``) with a ``"b l"`` mask."""

    def __init__(self, config: WordTextEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config = config if config is not None else WordTextEncoderConfig()
        self.tokenizer = WordTokenizer(config.vocab, config.max_length)
        self.embed = nn.Embedding(len(config.vocab), config.width)
        self.position = nn.Parameter(torch.zeros(config.max_length, config.width))
        layer = nn.TransformerEncoderLayer(
            config.width, config.heads, 4 * config.width, dropout=0.0, activation="gelu",
            batch_first=True, norm_first=True,
        )  # fmt: skip
        # enable_nested_tensor=False: the nested fast path is for inference only, and would give
        # padded positions zeros in eval but values in training.
        self.layers = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.width)
        # Unit-scale embeddings, not GPT's 0.02: in a pre-norm stack with no embedding LayerNorm,
        # each sublayer adds O(0.5) per coordinate to the residual stream, and 0.02-scale word
        # vectors were drowned by the sentence average. Measured on the 9,000-step Shapes model:
        # "moves to the left" and "to the right" encoded within 0.1 of each other (states of norm
        # 11), the direction words' embeddings barely moved from init, and the DiT ignored them.
        nn.init.normal_(self.embed.weight, std=1.0)
        nn.init.normal_(self.position, std=1.0)

    @property
    def dim(self) -> int:
        """Width of the token states."""
        return self.config.width

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        """``ids`` and ``mask`` ``"b l"`` -> states ``"b l d"`` (zero at padding)."""
        x = self.embed(ids) + self.position[: ids.shape[1]]                                     # b l d
        x = self.norm(self.layers(x, src_key_padding_mask=~mask))
        return x * mask[..., None]

    def encode(self, prompts: Sequence[str], device: torch.device | str | None = None) -> TextEmbeddings:
        """Tokenize and encode ``prompts`` on ``device`` (the encoder's own by default)."""
        device = device if device is not None else self.embed.weight.device
        ids, mask = self.tokenizer(list(prompts))
        ids, mask = ids.to(device), mask.to(device)
        return TextEmbeddings(self(ids, mask), mask)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` (vocabulary included) and the weights into ``directory``."""
        return hub.save_pretrained(self, self.config, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> WordTextEncoder:
        """Load a folder written by :meth:`save_pretrained`, in eval mode."""
        config = hub.load_config(WordTextEncoderConfig, directory, class_name=cls.__name__)
        model = cls(config)
        hub.load_weights(model, directory, device)
        return model.eval()
