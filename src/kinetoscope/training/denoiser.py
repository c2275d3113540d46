"""The pair a DiT run trains: the transformer and the text encoder it reads, starting it from an
exported model's weights (a fine-tune, possibly deepened), and LoRA adapters on it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from kinetoscope.text import TextEncoder, WordTextEncoder, WordTextEncoderConfig
from kinetoscope.training.dit_config import DiTTrainConfig
from kinetoscope.transformer import DiffusionTransformer, DiTConfig
from kinetoscope.transformer.grow import add_self_condition, deepen
from kinetoscope.transformer.lora import add_lora


class Denoiser(torch.nn.Module):
    """The trained pair: the transformer and the text encoder it reads.

    ``text`` configures a word encoder trained with the transformer, or is a frozen encoder,
    held as a plain attribute: outside ``parameters()`` and ``state_dict()``, so neither
    optimised, averaged nor checkpointed.
    """

    def __init__(self, model: DiTConfig, text: WordTextEncoderConfig | TextEncoder) -> None:
        super().__init__()
        self.transformer = DiffusionTransformer(model)
        self.text_encoder = WordTextEncoder(text) if isinstance(text, WordTextEncoderConfig) else text
        # Text lengths are padded up to a multiple of this (train_dit sets 8 with compile: one
        # compiled graph per bucket instead of one per caption length).
        self.text_multiple = 1

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, captions: list[str], self_condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Velocity of ``x`` ``"b c t h w"`` at times ``t`` (``"b"``, or ``"b 1 t 1 1"`` per frame) for
        ``captions`` (and a clean estimate ``self_condition``, for a model that reads one): one call
        through the text encoder and the transformer, which is what DistributedDataParallel wraps."""
        text = self.text_encoder.encode(captions, x.device).padded_to_multiple(self.text_multiple)
        return self.transformer(x, t, text.hidden, text.mask, self_condition=self_condition)


def load_initial_weights(denoiser: Denoiser, config: DiTTrainConfig) -> None:
    """Copy the transformer (and a word encoder's) weights of the folder ``config.init_from``.

    A run whose model config differs only by a larger ``depth`` starts from the folder's
    transformer deepened (:func:`~kinetoscope.transformer.grow.deepen`), and one that adds
    ``self_condition`` from it with a zero embedding of the estimate
    (:func:`~kinetoscope.transformer.grow.add_self_condition`); both predict as the folder's did.

    Raises ValueError naming the folder when its configs are not the run's, so a fine-tune
    never silently starts from a model of another shape or vocabulary.
    """
    folder = Path(config.init_from)
    transformer = DiffusionTransformer.from_pretrained(folder / "transformer")
    grown = replace(transformer.config, depth=config.model.depth, self_condition=config.model.self_condition) == config.model
    if grown and transformer.config.depth < config.model.depth:
        transformer = deepen(transformer, config.model.depth)  # predicts as before; the added blocks then train
    if grown and config.model.self_condition and not transformer.config.self_condition:
        transformer = add_self_condition(transformer)
    if transformer.config != config.model:
        raise ValueError(f"--init-from {folder}: its transformer config is not this run's model config")
    denoiser.transformer.load_state_dict(transformer.state_dict())
    if isinstance(denoiser.text_encoder, WordTextEncoder):
        encoder = WordTextEncoder.from_pretrained(folder / "text_encoder")
        if encoder.config != config.text:
            raise ValueError(f"--init-from {folder}: its text encoder config (vocabulary included) is not this run's")
        denoiser.text_encoder.load_state_dict(encoder.state_dict())


def adapt(denoiser: Denoiser, config: DiTTrainConfig) -> Denoiser:
    """With ``config.lora_rank``, LoRA adapters beside the transformer's block projections and
    every other weight frozen, the text encoder's included (in place); else ``denoiser`` as it is."""
    if config.lora_rank:
        add_lora(denoiser.transformer, config.lora_rank, config.lora_alpha)
        if isinstance(denoiser.text_encoder, torch.nn.Module):
            denoiser.text_encoder.requires_grad_(False)
    return denoiser


def build_denoiser(config: DiTTrainConfig, text: WordTextEncoderConfig | TextEncoder) -> Denoiser:
    """A :class:`Denoiser` of ``config``'s model (adapted as :func:`adapt` does): the layout of the
    weights a run with this config checkpoints, ready to load them."""
    return adapt(Denoiser(config.model, text), config)
