"""A DiT training step of the shipped recipe's size, shared by the benchmarks that time one (a helper
module: ``make bench`` skips files starting with ``_``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from kinetoscope.shapes.vocabulary import caption_language
from kinetoscope.text import WordTextEncoderConfig, WordTokenizer
from kinetoscope.training.denoiser import Denoiser
from kinetoscope.training.dit_config import DiTTrainConfig
from kinetoscope.training.run import autocast, compile_transformer

CPU = torch.device("cpu")
CAPTION = "A large red circle moves slowly to the right on a black background."


def dit_training_step(
    precision: str, *, compiled: bool = False, per_frame_times: bool = False, captions: Sequence[str] = (CAPTION,)
) -> Callable[[], None]:
    """One AdamW step of the shipped DiT's size on 32 random clips of 16 x 64 x 64 (80 tokens each),
    under ``precision``'s autocast, the transformer compiled or not; times per clip, or per latent
    frame as training draws them; ``captions`` repeated to fill the batch. Random weights."""
    vocab = WordTokenizer.from_words(caption_language()).vocab
    config = DiTTrainConfig(text=WordTextEncoderConfig(vocab=vocab))
    torch.manual_seed(0)
    denoiser = Denoiser(config.model, config.text)
    if compiled:
        compile_transformer(denoiser.transformer, CPU)
    optimizer = torch.optim.AdamW(denoiser.parameters(), lr=1e-5)
    x, t = torch.randn(32, 8, 5, 8, 8), torch.rand(32)
    if per_frame_times:
        t = t[:, None, None, None, None].expand(-1, 1, 5, 1, 1).contiguous()                   # b 1 t 1 1
    batch = list(captions) * (32 // len(captions))

    def step() -> None:
        with autocast(CPU, precision):
            loss = (denoiser(x, t, batch).float() - x).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step
