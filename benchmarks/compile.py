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

from _dit_step import dit_training_step
from _timing import time_interleaved, timing_arguments

CAPTIONS = (
    "A large red circle moves slowly to the right on a black background.",
    "A small blue triangle stays still and a large yellow square moves quickly down and to the left on a gray background.",
)


def dit_step(compiled: bool, precision: str) -> Callable[[], None]:
    return dit_training_step(precision, compiled=compiled, per_frame_times=True, captions=CAPTIONS)


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
