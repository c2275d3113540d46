"""Frozen pretrained text encoders (T5, CLIP, sentence-transformers) from a local folder.

Loaded through ``transformers`` (the ``hf`` extra), never downloaded: the folder holds a
tokenizer and a model as written by ``save_pretrained``. T5 folders load only the encoder
(``T5EncoderModel``, as PixArt, CogVideoX and Open-Sora use it); CLIP folders the text tower;
anything else ``AutoModel``. The per-token ``last_hidden_state`` is the conditioning.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from kinetoscope.errors import KinetoscopeError
from kinetoscope.text.base import TextEmbeddings

_ENCODER_CLASSES = {
    "t5": "T5EncoderModel",
    "mt5": "MT5EncoderModel",
    "umt5": "UMT5EncoderModel",
    "clip": "CLIPTextModel",
}


class HFTextEncoder:
    """A frozen ``transformers`` encoder behind the :class:`~kinetoscope.text.TextEncoder` interface."""

    def __init__(self, model: torch.nn.Module, tokenizer, max_length: int = 128) -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_length = max_length
        config = model.config
        self.dim = int(getattr(config, "d_model", None) or config.hidden_size)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: str | torch.device = "cpu", max_length: int = 128
    ) -> HFTextEncoder:
        """Load the tokenizer and encoder in ``directory`` (offline); KinetoscopeError if unusable."""
        try:
            import transformers
        except ImportError:
            raise KinetoscopeError("pretrained text encoders need transformers: pip install 'kinetoscope[hf]'") from None
        directory = Path(directory)
        if not (directory / "config.json").is_file():
            raise KinetoscopeError(f"{directory}: not a transformers model folder (no config.json)")
        # Without tokenizer files transformers builds an empty tokenizer that reads every word as unknown.
        if not any((directory / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
            raise KinetoscopeError(f"{directory}: holds no tokenizer (no tokenizer.json or tokenizer_config.json)")
        try:
            config = transformers.AutoConfig.from_pretrained(directory, local_files_only=True)
            # Encoder-decoder families load their encoder alone; the rest load whole.
            name = _ENCODER_CLASSES.get(config.model_type, "AutoModel")
            model_cls = getattr(transformers, name)
            model = model_cls.from_pretrained(directory, local_files_only=True)
            tokenizer = transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)
        except (OSError, ValueError) as err:
            raise KinetoscopeError(f"{directory}: cannot load a text encoder ({str(err).splitlines()[0]})") from None
        return cls(model.to(device), tokenizer, max_length)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the model and its tokenizer into ``directory``, as :meth:`from_pretrained` reads them."""
        directory = Path(directory)
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        return directory

    @torch.no_grad()
    def encode(self, prompts: Sequence[str], device: torch.device | str | None = None) -> TextEmbeddings:
        """``"b l d"`` last hidden states and the tokenizer's attention mask, on ``device``."""
        model_device = next(self.model.parameters()).device
        batch = self.tokenizer(
            list(prompts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        mask = batch["attention_mask"].to(model_device)
        hidden = self.model(input_ids=batch["input_ids"].to(model_device), attention_mask=mask).last_hidden_state
        device = device if device is not None else model_device
        return TextEmbeddings(hidden.float().to(device), mask.bool().to(device))
