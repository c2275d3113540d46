"""Grow a trained diffusion transformer deeper without losing what it has learnt.

Training a deeper model from scratch costs the whole CPU recipe again (hours); deepening a trained
one tests whether depth helps for the price of a fine-tune. Each added block is a copy of the
block before it with its output projections zeroed (attention ``out``, cross-attention ``out``,
the MLP's ``fc2``): its residual branches add nothing, so the deeper model predicts exactly what
the shallower one did, and training starts there. The copies' inner weights (QKV, ``fc1``, the
modulation tables) start trained, so the new block's first gradients are those of a working
block, not of a random one; the zero output layer gets gradients from the first step
(a block with both ends zero would not).

Blocks are added spread over the stack (after every second block when growing 6 -> 9), not all at
its end: each gets inputs at the level of features its source block was trained on.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from kinetoscope.transformer.model import DiffusionTransformer


def deepen_layout(old: int, new: int) -> list[tuple[int, bool]]:
    """For each block of the deeper stack, ``(source block, is a new copy)``, in order.

    The ``new - old`` copies are spread over the stack: old block ``i`` is followed by
    ``floor((i + 1) * extra / old) - floor(i * extra / old)`` copies of itself.
    """
    if not 1 <= old <= new:
        raise ValueError(f"need 1 <= old depth <= new depth, got {old} and {new}")
    extra = new - old
    layout = []
    for i in range(old):
        layout.append((i, False))
        layout.extend((i, True) for _ in range((i + 1) * extra // old - i * extra // old))
    return layout


@torch.no_grad()
def deepen(model: DiffusionTransformer, depth: int) -> DiffusionTransformer:
    """A copy of ``model`` with ``depth`` blocks whose predictions equal ``model``'s.

    Raises ValueError when ``depth`` is below the model's.
    """
    old = model.config.depth
    if depth < old:
        raise ValueError(f"depth must be at least the model's {old} (blocks are only added), got {depth}")
    parameter = next(model.parameters())
    deep = DiffusionTransformer(replace(model.config, depth=depth)).to(device=parameter.device, dtype=parameter.dtype)
    # Everything outside the blocks (embeddings, final layer) keeps its name and shape.
    shared = {k: v for k, v in model.state_dict().items() if not k.startswith("blocks.")}
    missing, _ = deep.load_state_dict(shared, strict=False)
    assert all(k.startswith("blocks.") for k in missing), missing
    for index, (source, is_copy) in enumerate(deepen_layout(old, depth)):
        block = deep.blocks[index]
        block.load_state_dict(model.blocks[source].state_dict())
        if is_copy:
            outputs = [block.attn.out, block.mlp.fc2] + ([] if block.joint else [block.cross_attn.out])
            for linear in outputs:
                linear.weight.zero_()
                linear.bias.zero_()
    deep.train(model.training)
    return deep


@torch.no_grad()
def add_self_condition(model: DiffusionTransformer) -> DiffusionTransformer:
    """A copy of ``model`` that also reads a clean estimate (``DiTConfig.self_condition``) and
    predicts what ``model`` does whatever the estimate: its embedding starts at zero, so a trained
    model can learn to use the estimate in a fine-tune. A model that reads one already is copied."""
    parameter = next(model.parameters())
    grown = DiffusionTransformer(replace(model.config, self_condition=True)).to(device=parameter.device, dtype=parameter.dtype)
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("self_condition_embed.") for k in missing), (missing, unexpected)
    grown.train(model.training)
    return grown
