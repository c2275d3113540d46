"""Mixed precision of training steps (``--precision``): bf16 autocast on a CPU when asked, float32
otherwise, weights kept float32; both trainers learn under it."""

from __future__ import annotations

import pytest
import torch

from kinetoscope.training.dit import train_dit
from kinetoscope.training.run import autocast, uses_bf16
from test_dit_training import _buckets, _config


def test_autocast_is_bf16_on_cuda_by_default_and_on_a_cpu_only_when_asked():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast(cpu, "auto"):
        assert (a @ b).dtype == torch.float32
    with autocast(cpu, "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with autocast(cpu, "fp32"):
        assert (a @ b).dtype == torch.float32
    assert uses_bf16(cuda, "auto") and uses_bf16(cuda, "bf16") and not uses_bf16(cuda, "fp32")
    assert not uses_bf16(cpu, "auto") and uses_bf16(cpu, "bf16")
    with pytest.raises(ValueError, match="precision"):
        autocast(cpu, "fp8")
    with pytest.raises(ValueError, match="precision"):
        _config(precision="half")


def test_the_dit_learns_in_bf16_with_float32_weights(tmp_path):
    torch.set_num_threads(1)
    full = train_dit(_config(steps=40), _buckets(), tmp_path / "fp32", progress=False)
    half = train_dit(_config(steps=40, precision="bf16"), _buckets(), tmp_path / "bf16", progress=False)
    assert half.losses != full.losses  # autocast was on
    assert sum(half.losses[-5:]) < 0.6 * sum(half.losses[:5])
    assert abs(sum(half.losses[-5:]) - sum(full.losses[-5:])) < 0.2 * sum(full.losses[-5:])
    assert all(p.dtype == torch.float32 for p in half.denoiser.parameters())


def test_the_vae_learns_in_bf16_with_float32_weights(tmp_path):
    pytest.importorskip("skimage", reason="scikit-image (the 'train' extra) ships the training photos")
    from kinetoscope.training.vae import train_vae
    from vae_runs import small_config

    torch.set_num_threads(1)
    full = train_vae(small_config(12), tmp_path / "fp32", progress=False)
    half = train_vae(small_config(12, precision="bf16"), tmp_path / "bf16", progress=False)
    assert half.losses != full.losses
    assert sum(half.losses[-3:]) < sum(half.losses[:3])
    assert all(p.dtype == torch.float32 for p in half.model.parameters())
