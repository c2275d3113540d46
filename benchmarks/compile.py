"""torch.compile against eager on this machine: a DiT training step as ``train dit --compile`` runs it.

    python benchmarks/compile.py             # ~3 min on 2 cores, most of it compiling (once: cached)
    python benchmarks/compile.py --threads 1 # steadier on a machine other jobs are loading

A step of the shipped DiT's size and batch (32 clips of 16 x 64 x 64, 80 tokens each; per-frame
times as training draws them, one- and two-object captions of different lengths; AdamW), with the
transformer eager and compiled in place by ``training.run.compile_transformer`` (TorchInductor).
The compiled model's first call pays the compilation, reported apart; the two then alternate round
by round and the medians are compared: "speed-up" above 1 means compiled is faster here. In float32
and under bf16 autocast (``--precision bf16``, which pays on CPUs with bf16 matrix units, see
benchmarks/precision.py); the last column is each row's compiled step against the float32 eager one.
Random weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from _timing import time_interleaved, timing_arguments

from kinetoscope.shapes.vocabulary import caption_language
from kinetoscope.text import WordTextEncoderConfig, WordTokenizer
from kinetoscope.training.denoiser import Denoiser
from kinetoscope.training.dit_config import DiTTrainConfig
from kinetoscope.training.run import autocast, compile_transformer

CPU = torch.device("cpu")
CAPTIONS = [
    "A large red circle moves slowly to the right on a black background.",
    "A small blue triangle stays still and a large yellow square moves quickly down and to the left on a gray background.",
]


def dit_step(compiled: bool, precision: str = "fp32") -> Callable[[], None]:
    vocab = WordTokenizer.from_words(caption_language()).vocab
    config = DiTTrainConfig(text=WordTextEncoderConfig(vocab=vocab))
    torch.manual_seed(0)
    denoiser = Denoiser(config.model, config.text)
    if compiled:
        compile_transformer(denoiser.transformer, CPU)
    optimizer = torch.optim.AdamW(denoiser.parameters(), lr=1e-5)
    x = torch.randn(32, 8, 5, 8, 8)
    t = torch.rand(32)[:, None, None, None, None].expand(-1, 1, 5, 1, 1).contiguous()                 # b 1 t 1 1
    captions = CAPTIONS * 16

    def step() -> None:
        with autocast(CPU, precision):
            loss = (denoiser(x, t, captions).float() - x).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    args = timing_arguments(__doc__)
    print(f"{'work':<46}{'eager s':>10}{'compiled s':>12}{'speed-up':>10}{'compiling s':>13}{'vs fp32 eager':>15}")
    reference = None
    for precision in ("fp32", "bf16"):
        steps = {"eager": dit_step(False, precision), "compiled": dit_step(True, precision)}
        start = time.perf_counter()
        steps["compiled"]()
        first = time.perf_counter() - start
        times = time_interleaved(steps, 1, args.rounds)
        eager, compiled = times["eager"][0], times["compiled"][0]
        reference = eager if reference is None else reference
        name = f"DiT training step, {precision} (shipped size, 32 clips)"
        print(f"{name:<46}{eager:>10.3f}{compiled:>12.3f}{eager / compiled:>10.2f}{first:>13.1f}{reference / compiled:>15.2f}")


if __name__ == "__main__":
    main()
