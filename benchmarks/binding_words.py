"""Does a DiT recipe tie each motion word to its own object? A probe on synthetic two-object latents.

    python benchmarks/binding_words.py              # three recipes, ~15-25 min on 2 cores
    python benchmarks/binding_words.py --steps 1500 # shorter runs (binding may not have come yet)

The Shapes World model reads direction words but mostly not whose they are: in two-object clips each
object moves a blend of both asked ways. This isolates the question from the VAE and the renderer,
as ``motion_words.py`` did for reading direction at all. Each latent clip ``"c t h w"`` (4 x 5 x 8 x 8)
holds two Gaussian bumps of different channel signatures (a "red" and a "blue" object), each moving
one latent pixel per frame, in two different ones of four directions, captioned "a red ball moves
right and a blue ball moves up" (the phrases in random order). On held-out clips the loss is
compared at the same noise with the true caption, with the two directions exchanged between the
objects (the same words, each tied to the other object) and with both reversed. **binding** is the
exchange gap over the reverse gap: 0 when the model moves the scene one way whatever the words'
owners, near 1 when each object follows its own words as well as the model reads them at all.

Three recipes of one model size (128 wide, 4 blocks, 4 heads): ``two``, every training clip holds
two objects; ``mixed``, half of them hold one (one bump, one phrase), as half of the Shapes World
cache does; ``mixed+two``, the mixed model fine-tuned on two-object clips alone (what ``train dit
--two-object-weight`` does on the Shapes World). Measured (2 cores, one thread): binding 0.61 / 0.64 /
0.81 at t = 0.5 / 0.7 / 0.9 for ``two``, 0.65 / 0.70 / 0.84 ``mixed``, 0.69 / 0.73 / 0.86
``mixed+two``; the Shapes World model (the shipped one fine-tuned 1,200 steps) is at 0.30 / 0.27 at t = 0.7 / 0.9 (``eval
caption-swap``). Binding comes suddenly, and when depends on the draw: on other clips the mixed run
was at 0.14 / 0.14 / 0.23 after 3,000 steps and 0.69 / 0.73 / 0.83 after 6,000. A 64-wide 2-block
model bound nothing in 3,000 steps, and with eight directions instead of four this model read
direction barely and bound nothing in 3,000 steps either: the harder probe for what to try next.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import torch
from einops import einsum

from motion_words import FRAMES, REVERSED, SIDE, SIGNATURE, STEPS, caption_losses, train_on

SIGNATURES = (SIGNATURE, (-1.0, 1.5, 2.0, -0.5))  # "red", "blue"
COLOURS = ("red", "blue")
SIZE = {"width": 128, "depth": 4, "heads": 4}


def two_bumps(num: int, generator: torch.Generator, one_object: float = 0.0):
    """``num`` clips ``"n c t h w"``, each object's direction, and the caption order per clip
    (0 or 1: which phrase comes first; None: a one-object clip, its second bump left out)."""
    names = list(STEPS)
    first = torch.randint(len(names), (num,), generator=generator)
    second = (first + torch.randint(1, len(names), (num,), generator=generator)) % len(names)  # another way
    direction = [(names[a], names[b]) for a, b in zip(first.tolist(), second.tolist(), strict=True)]
    velocity = torch.tensor([[STEPS[a], STEPS[b]] for a, b in direction], dtype=torch.float32)   # n o 2
    middle = 1.5 + (SIDE - 3) * torch.rand(num, 2, 2, generator=generator)                     # n o 2
    frames = torch.arange(FRAMES, dtype=torch.float32) - FRAMES // 2                             # t
    centres = middle[:, :, None] + frames[None, None, :, None] * velocity[:, :, None]            # n o t 2
    y, x = torch.meshgrid(torch.arange(SIDE, dtype=torch.float32), torch.arange(SIDE, dtype=torch.float32), indexing="ij")
    grid = torch.stack((x, y), dim=-1)                                                             # h w 2
    bump = torch.exp(-(grid - centres[:, :, :, None, None]).square().sum(-1) / 2.0)              # n o t h w
    alone = torch.rand(num, generator=generator) < one_object
    bump[alone, 1] = 0.0
    latents = einsum(torch.tensor(SIGNATURES), bump, "o c, n o t h w -> n c t h w")
    order = torch.randint(2, (num,), generator=generator).tolist()
    return latents, direction, [None if a else o for a, o in zip(alone.tolist(), order, strict=True)]


def captions(direction, order, change: str | None = None) -> list[str]:
    """The clips' captions; ``change`` "exchange" swaps the two directions, "reverse" reverses both."""
    texts = []
    for (a, b), first in zip(direction, order, strict=True):
        a, b = {"exchange": (b, a), "reverse": (REVERSED[a], REVERSED[b])}.get(change, (a, b))
        phrases = [f"a {COLOURS[0]} ball moves {a}", f"a {COLOURS[1]} ball moves {b}"]
        texts.append(" and ".join(phrases[:1] if first is None else phrases[::-1] if first else phrases))
    return texts


def gaps(denoiser, latents, direction, order, t: float, seed: int) -> dict[str, float]:
    """Velocity MSE with the true captions and the exchanged-minus-true and reversed-minus-true gaps."""
    texts = {change: captions(direction, order, change) for change in ("true", "exchange", "reverse")}
    losses = caption_losses(denoiser, latents, texts, t, seed)
    return {"loss": losses["true"], "exchange": losses["exchange"] - losses["true"], "reverse": losses["reverse"] - losses["true"]}


def fine_tuned(denoiser, clips, steps: int, seed: int):
    """``denoiser`` trained ``steps`` more on ``clips`` at a lower learning rate, as a fine-tune is."""
    with tempfile.TemporaryDirectory() as folder:
        denoiser.transformer.save_pretrained(os.path.join(folder, "transformer"))
        denoiser.text_encoder.save_pretrained(os.path.join(folder, "text_encoder"))
        latents, direction, order = clips
        return train_on(latents, captions(direction, order), steps, seed, lr=4e-4, init_from=folder, **SIZE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="training steps per recipe (default: 3000)")
    parser.add_argument("--finetune-steps", type=int, default=1000, help="steps of the two-object fine-tune (default: 1000)")
    parser.add_argument("--clips", type=int, default=4000, help="training clips (default: 4000)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default: 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    held_out = two_bumps(256, torch.Generator().manual_seed(args.seed + 1))
    models = {}
    for name, one_object in (("two", 0.0), ("mixed", 0.5)):
        latents, direction, order = two_bumps(args.clips, torch.Generator().manual_seed(args.seed), one_object)
        models[name] = train_on(latents, captions(direction, order), args.steps, args.seed, **SIZE)
    two_only = two_bumps(args.clips, torch.Generator().manual_seed(args.seed + 10))
    models["mixed+two"] = fine_tuned(models["mixed"], two_only, args.finetune_steps, args.seed)
    print(f"{'recipe':<10}{'t':>5}{'loss':>9}{'exchange gap':>14}{'reverse gap':>13}{'binding':>9}")
    for name, denoiser in models.items():
        for t in (0.5, 0.7, 0.9):
            row = gaps(denoiser, *held_out, t, args.seed + 2)
            # A reverse gap within noise of 0 means no motion words were read: binding is moot.
            binding = f"{row['exchange'] / row['reverse']:.2f}" if row["reverse"] > 1e-3 else "-"
            print(f"{name:<10}{t:>5}{row['loss']:>9.4f}{row['exchange']:>14.4f}{row['reverse']:>13.4f}{binding:>9}")


if __name__ == "__main__":
    main()
