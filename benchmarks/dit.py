"""Forward-pass speed of kinetoscope's diffusion transformer against diffusers' Wan and LTX.

    python benchmarks/dit.py               # the table, ~1-2 min on 2 cores
    python benchmarks/dit.py --repeats 5   # quicker, noisier
    python benchmarks/dit.py --threads 1   # steadier on a machine other jobs are loading

Every model is built at the same width, depth, heads, token count and text length, with random
weights (no downloads), and run in this process: 2 threads (``--threads``), fp32, no_grad,
batch 1. Timings are interleaved (one forward of each model per round, after warm-ups) and the
median per model is reported, so drift from neighbours on the shared machine hits all models
alike. FLOPs come
from ``FlopCounterMode``, with a formula registered for the CPU SDPA kernel
(``aten._scaled_dot_product_flash_attention_for_cpu``), which stock FlopCounterMode counts as 0.
"peak" is a 2048 x 2048 fp32 matmul measured in the same run; tok/s, GFLOP/s and % peak use the
median. "vs ours" is the model's median time over ours (cross-attention variant, the like-for-like
design), "(best)" the same for the fastest round: >= 1.0 means ours is faster. With two threads
on a loaded machine every kernel can stall on its thread barrier, and timings swing by 2x or
more; ``--threads 1`` then measures the models rather than the neighbours.
Needs diffusers (the test extra); without it only our rows print.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from _timing import time_interleaved

from kinetoscope.patches import patchify
from kinetoscope.transformer import DiffusionTransformer, DiTConfig

TEXT_LEN = 32
TEXT_DIM = 384
CHANNELS = 16


@dataclass(frozen=True)
class Geometry:
    """One row group of the table: a model size and a latent size (patch 1x2x2)."""

    name: str
    width: int
    depth: int
    heads: int
    latent: tuple[int, int, int]  # (t, h, w) of a 16-channel latent

    @property
    def tokens(self) -> int:
        t, h, w = self.latent
        return t * (h // 2) * (w // 2)


GEOMETRIES = [
    Geometry("shapes (256w 6L 4h)", 256, 6, 4, (8, 16, 16)),
    Geometry("shapes (256w 6L 4h)", 256, 6, 4, (8, 16, 32)),
    Geometry("research (384w 12L 6h)", 384, 12, 6, (8, 16, 16)),
]


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


FLOP_MAPPING = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops}


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn``, CPU attention included."""
    with FlopCounterMode(display=False, custom_mapping=FLOP_MAPPING) as counter:
        fn()
    return counter.get_total_flops()


def matmul_peak(repeats: int = 10) -> float:
    """This machine's fp32 GFLOP/s on a 2048 x 2048 matmul (the best of ``repeats``)."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * 2048**3 / best / 1e9


def build_models(geo: Geometry) -> dict[str, tuple[torch.nn.Module, Callable[[], object]]]:
    """Name -> (model, a closure running one forward on fixed inputs)."""
    g = torch.Generator().manual_seed(0)
    t, h, w = geo.latent
    latent = torch.randn(1, CHANNELS, t, h, w, generator=g)
    text = torch.randn(1, TEXT_LEN, TEXT_DIM, generator=g)
    text_mask = torch.ones(1, TEXT_LEN, dtype=torch.bool)
    sigma = torch.tensor([0.7])
    models: dict[str, tuple[torch.nn.Module, Callable[[], object]]] = {}
    for mode in ("cross", "joint"):
        cfg = DiTConfig(
            in_channels=CHANNELS, width=geo.width, depth=geo.depth, heads=geo.heads,
            text_dim=TEXT_DIM, text_conditioning=mode,
        )
        model = _perturbed(DiffusionTransformer(cfg)).eval()
        models[f"ours ({mode})"] = (model, lambda m=model: m(latent, sigma, text, text_mask))
    try:
        from diffusers import LTXVideoTransformer3DModel, WanTransformer3DModel
    except ImportError:
        print("diffusers is not installed (pip install 'diffusers>=0.30,<1'): skipping Wan and LTX")
        return models
    head_dim = geo.width // geo.heads
    wan = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=geo.heads, attention_head_dim=head_dim,
        in_channels=CHANNELS, out_channels=CHANNELS, text_dim=TEXT_DIM, ffn_dim=4 * geo.width,
        num_layers=geo.depth,
    ).eval()
    models["diffusers Wan"] = (
        wan, lambda: wan(latent, 1000 * sigma, text, return_dict=False)
    )
    ltx = LTXVideoTransformer3DModel(
        in_channels=CHANNELS * 4, out_channels=CHANNELS * 4, patch_size=1, patch_size_t=1,
        num_attention_heads=geo.heads, attention_head_dim=head_dim, cross_attention_dim=geo.width,
        num_layers=geo.depth, caption_channels=TEXT_DIM,
    ).eval()
    # LTX takes tokens packed outside the model (its pipeline's _pack_latents).
    packed = patchify(latent, (1, 2, 2))  # the same token layout as its _pack_latents
    models["diffusers LTX"] = (
        ltx,
        lambda: ltx(
            packed, text, 1000 * sigma, text_mask.long(), num_frames=t, height=h // 2, width=w // 2,
            return_dict=False,
        ),
    )
    return models


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """Fill the zero-initialised layers so the forward does real work (speed is weight-blind anyway)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per geometry (median reported)")
    parser.add_argument("--warmups", type=int, default=1, help="untimed rounds first")
    parser.add_argument(
        "--threads", type=int, default=2, help="intra-op threads (1 is steadier when other jobs load the CPU)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    peak = matmul_peak()
    load = os.getloadavg()[0]
    print(
        f"fp32 matmul peak (2048^2, {args.threads} threads): {peak:.1f} GFLOP/s; "
        f"text {TEXT_LEN} x {TEXT_DIM}; batch 1; load average {load:.1f} on {os.cpu_count()} CPUs\n"
    )
    header = (
        f"{'geometry':<23} {'tokens':>6} {'model':<14} {'params':>7} {'GFLOP':>6} {'median':>9} {'best':>9} "
        f"{'tok/s':>6} {'GFLOP/s':>7} {'%peak':>5} {'vs ours':>7} {'(best)':>6}"
    )
    print(header)
    print("-" * len(header))
    with torch.no_grad():
        for geo in GEOMETRIES:
            models = build_models(geo)
            runs = {name: fn for name, (_, fn) in models.items()}
            flops = {name: count_flops(fn) for name, fn in runs.items()}
            times = time_interleaved(runs, args.warmups, args.repeats)
            ours_median, ours_best = times["ours (cross)"]
            for name, (model, _) in models.items():
                median, best = times[name]
                gflops = flops[name] / 1e9
                params = sum(p.numel() for p in model.parameters()) / 1e6
                ratio = "" if name == "ours (cross)" else f"{median / ours_median:.2f}x"
                ratio_best = "" if name == "ours (cross)" else f"{best / ours_best:.2f}x"
                print(
                    f"{geo.name:<23} {geo.tokens:>6} {name:<14} {params:>6.1f}M {gflops:>6.1f} "
                    f"{median * 1e3:>7.1f}ms {best * 1e3:>7.1f}ms {geo.tokens / median:>6.0f} "
                    f"{gflops / median:>7.1f} {100 * gflops / median / peak:>4.0f}% "
                    f"{ratio:>7} {ratio_best:>6}"
                )
            print()


if __name__ == "__main__":
    main()
