"""`train dit --compile`: the transformer compiled with torch.compile trains the same model, padded
captions change nothing, and a machine without a C++ compiler is refused before any work."""

from __future__ import annotations

import os
import subprocess

import pytest
import torch

from kinetoscope.training.dit import train_dit
from test_dit_training import _buckets, _config


@pytest.mark.slow  # TorchInductor compiles the step's graphs for two bucket shapes: ~2 minutes here
def test_a_compiled_transformer_trains_the_same_model(tmp_path):
    torch.set_num_threads(1)
    plain = train_dit(_config(steps=4), _buckets(), tmp_path / "plain", progress=False)
    compiled = train_dit(_config(steps=4, compile=True), _buckets(), tmp_path / "compiled", progress=False)
    # Compiled in place: the same module and state-dict keys, so checkpoints and exports do not change.
    assert compiled.denoiser.transformer._compiled_call_impl is not None
    assert plain.denoiser.transformer._compiled_call_impl is None
    assert compiled.denoiser.state_dict().keys() == plain.denoiser.state_dict().keys()
    torch.testing.assert_close(torch.tensor(compiled.losses), torch.tensor(plain.losses), rtol=1e-4, atol=1e-5)
    for key, value in plain.denoiser.state_dict().items():
        torch.testing.assert_close(compiled.denoiser.state_dict()[key], value, rtol=1e-3, atol=1e-5, msg=key)


def test_padding_the_captions_changes_no_velocity():
    from kinetoscope.training.denoiser import Denoiser

    torch.manual_seed(0)
    config = _config()
    denoiser = Denoiser(config.model, config.text).eval()
    x, t = torch.randn(2, 4, 3, 4, 4), torch.tensor([0.3, 0.8])
    captions = ["a red ball", "a blue box moves left on a gray background"]
    with torch.no_grad():
        plain = denoiser(x, t, captions)
        denoiser.text_multiple = 8
        padded = denoiser(x, t, captions)
    text = denoiser.text_encoder.encode(captions)
    assert text.hidden.shape[1] % 8 and text.padded_to_multiple(8).hidden.shape[1] % 8 == 0  # it did pad
    torch.testing.assert_close(padded, plain, rtol=1e-5, atol=1e-6)


def test_compile_names_a_missing_cxx_compiler(tmp_path, monkeypatch):
    from kinetoscope.errors import KinetoscopeError

    monkeypatch.setenv("CXX", "no-such-compiler-here")
    with pytest.raises(KinetoscopeError, match="C\\+\\+ compiler"):
        train_dit(_config(steps=1, compile=True), _buckets(), tmp_path, progress=False)
    assert not any(tmp_path.glob("step_*.pt"))  # refused before any step


def test_cli_compile_without_a_cxx_compiler_is_refused_before_any_work(kinetoscope_bin, tmp_path):
    env = {**os.environ, "CXX": "no-such-compiler-here"}
    result = subprocess.run([str(kinetoscope_bin), "train", "dit", "--run-dir", str(tmp_path / "run"), "--compile",
                             "--device", "cpu"], capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert result.returncode == 2 and "C++ compiler" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
