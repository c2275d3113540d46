"""Generation time of the shipped model: its default sampling settings against the defaults before
(24 steps, every step guided, no motion contrast), in this process and as whole ``kinetoscope
generate`` commands.

    python benchmarks/generate.py              # the table, ~1 min on 2 cores
    python benchmarks/generate.py --threads 1  # steadier on a machine other jobs are loading

"passes" counts the clips the transformer ran per generated clip (a guided step runs the prompt and
the empty prompt as one batch of two, three with the motion contrast; a step outside the guidance
interval runs one). Calls are interleaved round by round after a warm-up and medians reported, so
drift on a shared machine hits both settings alike; "ratio" is the settings before over the
defaults: above 1 means the defaults are faster. The command rows time a fresh process each
(start-up, model load, sampling, decoding, writing the mp4): what the issue's 5-second target
measures.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from _timing import time_interleaved, timing_arguments

from kinetoscope.pipelines.text_to_video import KinetoscopePipeline

PROMPT = "a red ball moving left"
BEFORE = {"num_inference_steps": 24, "guidance_interval": (0.0, 1.0), "contrast_scale": 0.0}
BEFORE_FLAGS = ["--steps", "24", "--guidance-interval", "0,1", "--contrast-scale", "0"]


def medians(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    return {name: median for name, (median, _) in time_interleaved(runs, 1, rounds).items()}


def command(output: Path, flags: list[str], threads: int) -> Callable[[], None]:
    argv = [sys.executable, "-m", "kinetoscope", "generate", PROMPT, "-o", str(output), "--threads", str(threads), *flags]
    return lambda: subprocess.run(argv, check=True, capture_output=True)


def main() -> None:
    args = timing_arguments(__doc__)
    pipe = KinetoscopePipeline.from_pretrained()
    passes: list[int] = []
    pipe.transformer.register_forward_pre_hook(lambda module, inputs: passes.append(inputs[0].shape[0]))

    def count(**kwargs) -> int:
        passes.clear()
        pipe(PROMPT, **kwargs)
        return sum(passes)

    counts = {"defaults": count(), "before": count(**BEFORE)}
    calls = medians({"defaults": lambda: pipe(PROMPT), "before": lambda: pipe(PROMPT, **BEFORE)}, args.rounds)
    with tempfile.TemporaryDirectory() as folder:
        commands = medians(
            {"defaults": command(Path(folder) / "a.mp4", [], args.threads),
             "before": command(Path(folder) / "b.mp4", BEFORE_FLAGS, args.threads)},
            args.rounds,
        )  # fmt: skip
    d = pipe.defaults
    print(f"defaults: {d.num_inference_steps} steps, guided at t in {list(d.guidance_interval or (0, 1))}, motion "
          f"contrast {d.contrast_scale:g} at t in {list(d.contrast_interval or (0, 1))}; "
          f"before: {BEFORE['num_inference_steps']} steps, every step guided, no contrast")  # fmt: skip
    print(f"{'work':<44}{'defaults':>10}{'before':>10}{'ratio':>8}")
    print(f"{'transformer passes per clip':<44}{counts['defaults']:>10}{counts['before']:>10}"
          f"{counts['before'] / counts['defaults']:>8.2f}")  # fmt: skip
    for name, times in (("pipeline call, 16 frames 64x64 (s)", calls), ("kinetoscope generate command (s)", commands)):
        print(f"{name:<44}{times['defaults']:>10.3f}{times['before']:>10.3f}{times['before'] / times['defaults']:>8.2f}")


if __name__ == "__main__":
    main()
