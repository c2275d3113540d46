"""The decoded one-step loss: which clips it decodes, where its gradient goes, and that training uses it."""

from __future__ import annotations

import json

import pytest
import torch

from kinetoscope.training.decoded_loss import decoded_loss
from kinetoscope.training.dit import train_dit
from kinetoscope.vae import PRESETS, CausalVideoVAE
from test_dit_training import _buckets, _config


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_it_compares_decoded_predictions_of_the_first_low_noise_clips_only():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 2, 3, 4, 4, generator=g)
    pred = (x0 + torch.randn(x0.shape, generator=g)).requires_grad_()
    times = torch.tensor([0.9, 0.1, 0.2, 0.05, 0.25])
    calls = []

    def decode(z):  # a stand-in decoder that records what it is given
        calls.append(z.shape[0])
        return 2 * z

    loss = decoded_loss(decode, x0, pred, times, max_t=0.22, clips=2)
    # Clips 1 and 2 qualify first (3 does too, but two are asked); clip 0 (t = 0.9) never.
    expected = (2 * pred[1:3] - 2 * x0[1:3]).square().mean()
    torch.testing.assert_close(loss, expected)
    assert calls == [2, 2]
    loss.backward()
    assert pred.grad[1:3].abs().sum() > 0 and not pred.grad[[0, 3, 4]].any()


def test_with_no_low_noise_clip_it_is_a_zero_in_the_graph():
    pred = torch.randn(2, 2, 1, 4, 4, requires_grad=True)
    loss = decoded_loss(lambda z: z, pred.detach(), pred, torch.tensor([0.8, 0.9]), max_t=0.3, clips=4)
    assert float(loss.detach()) == 0.0 and loss.requires_grad


def test_training_logs_it_and_is_changed_by_it_and_needs_the_vae(tmp_path):
    torch.manual_seed(0)
    vae = CausalVideoVAE(PRESETS["tiny"]())  # 4 latent channels, as the test latents
    config = _config(steps=4, decoded_weight=50.0, decoded_max_t=0.6, decoded_clips=2)
    with_term = train_dit(config, _buckets(), tmp_path / "with", progress=False, vae=vae)
    without = train_dit(_config(steps=4), _buckets(), tmp_path / "without", progress=False)
    logged = [json.loads(line) for line in (tmp_path / "with" / "log.jsonl").read_text().splitlines()]
    decoded = [r["decoded"] for r in logged if "decoded" in r]
    assert len(decoded) == 4 and max(decoded) > 0
    # Same seed and batches: only the decoded term tells the two runs apart.
    assert with_term.losses[0] > without.losses[0]
    differs = [not torch.equal(a, b) for a, b in zip(with_term.denoiser.parameters(), without.denoiser.parameters())]
    assert any(differs)
    # The VAE's weights are not trained (a frozen copy decodes).
    assert all(p.requires_grad for p in vae.parameters())
    with pytest.raises(ValueError, match="needs the VAE"):
        train_dit(config, _buckets(), tmp_path / "novae", progress=False)


def test_config_rejects_bad_decoded_settings():
    for bad in ({"decoded_weight": -1.0}, {"decoded_max_t": 0.0}, {"decoded_max_t": 1.5}, {"decoded_clips": 0}):
        with pytest.raises(ValueError, match="decoded"):
            _config(**bad)
