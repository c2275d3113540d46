"""The patcher: parameter-free tensor plumbing between latent videos and transformer tokens.

``patchify`` cuts ``"b c t h w"`` latents into spacetime patch tokens and back, with (t, h, w)
patch positions; ``packing`` is NaViT's Patch n' Pack, several clips of any size per row with
segment ids and block-diagonal attention masks. Depends on torch and einops only.
"""

from kinetoscope.patches.packing import (
    PADDING,
    ClipSlot,
    PackedBatch,
    PackedSequences,
    attention_mask,
    pack,
    pack_sequences,
    per_token,
    unpack,
)
from kinetoscope.patches.patchify import (
    grid_positions,
    patch_grid,
    patchify,
    token_dim,
    unpatchify,
)

__all__ = [
    "PADDING",
    "ClipSlot",
    "PackedBatch",
    "PackedSequences",
    "attention_mask",
    "grid_positions",
    "pack",
    "pack_sequences",
    "patch_grid",
    "patchify",
    "per_token",
    "token_dim",
    "unpack",
    "unpatchify",
]
