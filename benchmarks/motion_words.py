"""Does a DiT recipe learn to read motion words? A one-minute probe on synthetic latents.

    python benchmarks/motion_words.py              # cross and joint attention, ~1 min on 2 cores
    python benchmarks/motion_words.py --steps 2000 # longer runs, steadier gaps

The Shapes World model learnt colour, size and background from its captions but not which way
an object moves: swapping "left" and "right" left its loss unchanged. This isolates the question
from the VAE and the renderer. Each latent clip ``"c t h w"`` (4 x 5 x 8 x 8, the shipped model's
latent grid of a 16-frame clip, halved in channels) holds one Gaussian bump that moves one latent
pixel per frame in one of four directions, captioned "a red ball moves right" (left, up, down).
Appearance never depends on the caption, so the words can only help by saying where the bump
goes next. A small DiT is trained on the clips with each text-conditioning mode, then its loss
on held-out clips is compared with the true caption and with the direction reversed ("sign") or
turned a quarter ("axis"), at the same noise: a gap of 0 means the motion words are ignored.
The last lines compare the two modes' sign gaps.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from einops import rearrange

from kinetoscope.data.latent_cache import LatentBucket
from kinetoscope.data.shapes_latents import LatentBucketSpec, ShapesLatentsConfig
from kinetoscope.diffusion import add_noise, velocity_target
from kinetoscope.shapes.vocabulary import caption_language
from kinetoscope.text import WordTextEncoderConfig, WordTokenizer
from kinetoscope.training.dit import DiTTrainConfig, ema_denoiser, train_dit
from kinetoscope.training.frame_masks import FrameMaskConfig
from kinetoscope.transformer import DiTConfig

STEPS = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}
REVERSED = {"right": "left", "left": "right", "down": "up", "up": "down"}
TURNED = {"right": "up", "left": "down", "down": "right", "up": "left"}
# A fixed channel signature for the bump: the latent of one coloured object, roughly.
SIGNATURE = (2.0, -1.5, 1.0, 0.5)
FRAMES, SIDE = 5, 8


def moving_bumps(num: int, generator: torch.Generator) -> tuple[torch.Tensor, list[str]]:
    """``num`` clips ``"n c t h w"`` of a bump moving one pixel per frame, and their directions."""
    names = list(STEPS)
    direction = [names[i] for i in torch.randint(len(names), (num,), generator=generator).tolist()]
    velocity = torch.tensor([STEPS[d] for d in direction], dtype=torch.float32)                  # n 2
    # The middle frame's centre is uniform in the grid's interior; frame k sits (k - 2) steps away.
    middle = 1.5 + (SIDE - 3) * torch.rand(num, 2, generator=generator)                          # n 2
    frames = torch.arange(FRAMES, dtype=torch.float32) - FRAMES // 2                              # t
    centres = middle[:, None] + frames[None, :, None] * velocity[:, None]                         # n t 2
    y, x = torch.meshgrid(torch.arange(SIDE, dtype=torch.float32), torch.arange(SIDE, dtype=torch.float32), indexing="ij")
    grid = torch.stack((x, y), dim=-1)                                                             # h w 2
    distance = (grid[None, None] - centres[:, :, None, None]).square().sum(-1)                   # n t h w
    bump = torch.exp(-distance / 2.0)
    latents = torch.tensor(SIGNATURE)[None, :, None, None, None] * rearrange(bump, "n t h w -> n 1 t h w")
    return latents, direction


def captions(direction: list[str], change: dict[str, str] | None = None) -> list[str]:
    return [f"a red ball moves {change[d] if change else d}" for d in direction]


def train_on(latents: torch.Tensor, texts: list[str], steps: int, seed: int, mode: str = "joint", width: int = 64,
             depth: int = 2, heads: int = 2, lr: float = 1e-3, init_from: str | None = None):
    """A small DiT and word encoder trained on the clips and their captions (``init_from``: a folder
    of a ``transformer/`` and ``text_encoder/`` to start from); returns the EMA pair."""
    vocab = WordTokenizer.from_words(caption_language()).vocab
    config = DiTTrainConfig(
        model=DiTConfig(in_channels=latents.shape[1], text_dim=32, width=width, depth=depth, heads=heads,
                        pooled_text=True, text_conditioning=mode),  # fmt: skip
        text=WordTextEncoderConfig(vocab=vocab, width=32, depth=1, heads=2),
        # The config's data section is not read (the buckets are passed in); it must name one bucket.
        data=ShapesLatentsConfig(buckets=(LatentBucketSpec(17, 64, 64, latents.shape[0], 1.0),)),
        masks=FrameMaskConfig(none=1.0, first=0.0, last=0.0, first_last=0.0, prefix=0.0, suffix=0.0, random=0.0),
        tokens_per_batch=640,
        steps=steps,
        lr=lr,
        warmup_steps=20,
        checkpoint_every=steps,
        seed=seed,
        device="cpu",
        init_from=init_from,
    )
    bucket = LatentBucket(latents, [{"text": text} for text in texts])
    with tempfile.TemporaryDirectory() as run_dir:
        return ema_denoiser(train_dit(config, [bucket], run_dir, progress=False))


def train(mode: str, latents: torch.Tensor, direction: list[str], steps: int, seed: int):
    """A debug-size DiT and word encoder trained on the clips; returns the EMA pair."""
    return train_on(latents, captions(direction), steps, seed, mode=mode)


@torch.no_grad()
def caption_losses(denoiser, latents: torch.Tensor, texts: dict[str, list[str]], t: float, seed: int) -> dict[str, float]:
    """Velocity MSE of the clips noised to ``t`` (the same noise for every entry) under each entry's captions."""
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(seed))
    x_t = add_noise(latents, noise, t)
    times = torch.full((latents.shape[0],), t)
    losses = {}
    for name, captioned in texts.items():
        text = denoiser.text_encoder.encode(captioned, "cpu")
        v = denoiser.transformer(x_t, times, text.hidden, text.mask)
        losses[name] = float((v - velocity_target(latents, noise)).square().mean())
    return losses


def gaps(denoiser, latents: torch.Tensor, direction: list[str], t: float, seed: int) -> dict[str, float]:
    """Velocity MSE with the true captions and the reversed-minus-true and turned-minus-true gaps."""
    texts = {"true": captions(direction), "sign": captions(direction, REVERSED), "axis": captions(direction, TURNED)}
    losses = caption_losses(denoiser, latents, texts, t, seed)
    return {"loss": losses["true"], "sign": losses["sign"] - losses["true"], "axis": losses["axis"] - losses["true"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps per mode (default: 1000)")
    parser.add_argument("--clips", type=int, default=2000, help="training clips (default: 2000)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default: 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    latents, direction = moving_bumps(args.clips, torch.Generator().manual_seed(args.seed))
    held_out, held_direction = moving_bumps(256, torch.Generator().manual_seed(args.seed + 1))
    rows = {}
    for mode in ("cross", "joint"):
        denoiser = train(mode, latents, direction, args.steps, args.seed)
        rows[mode] = {t: gaps(denoiser, held_out, held_direction, t, args.seed + 2) for t in (0.7, 0.9)}
    print(f"{'mode':<7}{'t':>5}{'loss':>9}{'sign gap':>10}{'axis gap':>10}")
    for mode, by_t in rows.items():
        for t, row in by_t.items():
            print(f"{mode:<7}{t:>5}{row['loss']:>9.4f}{row['sign']:>10.4f}{row['axis']:>10.4f}")
    for t in (0.7, 0.9):
        cross, joint = rows["cross"][t]["sign"], rows["joint"][t]["sign"]
        # A gap within noise of 0 makes a ratio meaningless; say so instead.
        ratio = f"{joint / cross:.1f}x" if cross > 1e-4 else "cross reads no motion words"
        print(f"sign gap at t = {t}: joint {joint:.4f}, cross {cross:.4f} ({ratio})")


if __name__ == "__main__":
    main()
