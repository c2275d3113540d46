"""Deepening a trained diffusion transformer: it predicts as before, and the added blocks train."""

from __future__ import annotations

import pytest
import torch

from dit_models import MODES, inputs, model, one_thread  # noqa: F401  (tests/ is on sys.path; one_thread is autouse)
from kinetoscope.transformer.grow import deepen, deepen_layout


def test_added_blocks_are_spread_over_the_stack():
    assert deepen_layout(6, 9) == [(0, False), (1, False), (1, True), (2, False), (3, False), (3, True),
                                   (4, False), (5, False), (5, True)]  # fmt: skip
    assert deepen_layout(2, 2) == [(0, False), (1, False)]
    assert [source for source, copy in deepen_layout(2, 6) if copy] == [0, 0, 1, 1]
    with pytest.raises(ValueError):
        deepen_layout(3, 2)


@pytest.mark.parametrize("mode", MODES)
def test_a_deepened_model_predicts_as_before_and_its_new_blocks_learn(mode):
    net = model(mode)  # perturbed: every weight, zero-initialised ones included, does work
    latents, t, text = inputs((2, 4, 3, 4, 4))
    before = net(latents, t, text)
    deep = deepen(net, 5)
    assert deep.config.depth == 5 and len(deep.blocks) == 5 and not deep.training
    torch.testing.assert_close(deep(latents, t, text), before, atol=1e-5, rtol=1e-5)
    # The copy's outputs are zero, its inside is its source's: it adds nothing, yet its output layer gets a gradient.
    copy = deep.blocks[1]
    assert torch.equal(copy.attn.qkv.weight, net.blocks[0].attn.qkv.weight)
    assert not copy.mlp.fc2.weight.any() and not copy.attn.out.weight.any()
    deep.train()
    deep(latents, t, text).square().mean().backward()
    assert copy.mlp.fc2.weight.grad.abs().sum() > 0 and copy.attn.out.weight.grad.abs().sum() > 0
    # The original stays as it was.
    assert len(net.blocks) == 2 and torch.equal(net(latents, t, text), before)


def test_a_model_is_never_made_shallower():
    with pytest.raises(ValueError, match="at least the model's 2"):
        deepen(model(), 1)
