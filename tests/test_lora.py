"""LoRA: adapters that start as a no-op, merge into the weights they adapt, travel as a small folder,
and a fine-tune that trains them alone (``train dit --lora-rank``), resumable, exported both ways."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("peft", reason="LoRA needs peft (the 'lora' extra)")

import dit_models  # noqa: E402
from kinetoscope.errors import KinetoscopeError  # noqa: E402
from kinetoscope.training import checkpoint  # noqa: E402
from kinetoscope.training.dit import ema_denoiser, load_run_ema, train_dit  # noqa: E402
from kinetoscope.transformer.lora import add_lora, has_lora, load_lora, merge_lora, save_lora  # noqa: E402
from test_dit_training import _buckets, _config, _export  # noqa: E402

one_thread = dit_models.one_thread


def _perturb_adapters(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".lora_B." in name:
                param.normal_(std=0.1)


@pytest.mark.parametrize("mode", dit_models.MODES)
def test_adapters_start_as_a_no_op_train_alone_and_merge_into_the_weights(mode):
    model = dit_models.model(mode)
    x, t, text = dit_models.inputs((2, 4, 3, 8, 8))
    with torch.no_grad():
        base = model(x, t, text)
    keys = list(model.state_dict())
    add_lora(model, rank=4)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert has_lora(model) and trainable and all(".lora_" in name for name in trainable)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) < 0.1 * sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        assert torch.equal(model(x, t, text), base)
        _perturb_adapters(model)
        adapted = model(x, t, text)
        assert (adapted - base).abs().max() > 1e-2
        merge_lora(model)
        assert not has_lora(model) and list(model.state_dict()) == keys
        torch.testing.assert_close(model(x, t, text), adapted, rtol=1e-4, atol=1e-5)


def test_an_adapter_folder_adapts_a_fresh_copy_of_its_base_at_any_scale(tmp_path):
    x, t, text = dit_models.inputs((2, 4, 3, 8, 8))
    model = add_lora(dit_models.model("cross"), rank=2, alpha=4)
    _perturb_adapters(model)
    with torch.no_grad():
        adapted = model(x, t, text)
    save_lora(model, tmp_path / "adapter")
    files = {p.name: p.stat().st_size for p in (tmp_path / "adapter").iterdir()}
    assert set(files) == {"adapter_config.json", "adapter_model.safetensors"}
    assert files["adapter_model.safetensors"] < 0.1 * sum(p.numel() * 4 for p in dit_models.model("cross").parameters())
    with torch.no_grad():
        base = dit_models.model("cross")(x, t, text)
        loaded = load_lora(dit_models.model("cross"), tmp_path / "adapter")
        assert all(p.requires_grad for p in loaded.parameters())  # as it was before adapting
        torch.testing.assert_close(loaded(x, t, text), adapted, rtol=1e-4, atol=1e-5)
        assert torch.equal(load_lora(dit_models.model("cross"), tmp_path / "adapter", scale=0.0)(x, t, text), base)
        half = load_lora(load_lora(dit_models.model("cross"), tmp_path / "adapter", 0.5), tmp_path / "adapter", 0.5)
        torch.testing.assert_close(half(x, t, text), adapted, rtol=1e-4, atol=1e-5)  # merged deltas add up
    with pytest.raises(ValueError, match="finite"):
        load_lora(dit_models.model("cross"), tmp_path / "adapter", scale=float("nan"))


def test_an_adapter_for_another_architecture_is_refused_and_changes_nothing(tmp_path):
    save_lora(add_lora(dit_models.model("cross"), rank=2), tmp_path / "cross")
    joint = dit_models.model("joint").requires_grad_(False)
    before = {k: v.clone() for k, v in joint.state_dict().items()}
    with pytest.raises(KinetoscopeError, match="do not fit this model"):
        load_lora(joint, tmp_path / "cross")
    assert not has_lora(joint) and list(joint.state_dict()) == list(before)
    assert all(torch.equal(joint.state_dict()[k], v) for k, v in before.items())
    assert not any(p.requires_grad for p in joint.parameters())
    with pytest.raises(KinetoscopeError, match="not a LoRA adapter folder"):
        load_lora(joint, tmp_path)


def _base_model(tmp_path):
    base = train_dit(_config(steps=4), _buckets(), tmp_path / "base-run", progress=False)
    return _export(base, tmp_path / "base")


def test_a_lora_fine_tune_trains_only_the_adapters_resumes_and_exports_merged(tmp_path):
    base = _base_model(tmp_path)
    config = _config(steps=8, checkpoint_every=4, init_from=tmp_path / "base", lora_rank=4, lr=1e-2)
    whole = train_dit(config, _buckets(), tmp_path / "lora", progress=False)
    state = whole.denoiser.state_dict()
    # The base weights stayed the folder's; the adapters moved.
    for key, value in base.transformer.state_dict().items():
        layer, _, leaf = key.rpartition(".")  # peft keeps an adapted layer's own weights as base_layer's
        stored = state.get(f"transformer.{key}", state.get(f"transformer.{layer}.base_layer.{leaf}"))
        assert stored is not None and torch.equal(stored, value), key
    for key, value in base.text_encoder.state_dict().items():
        assert torch.equal(state[f"text_encoder.{key}"], value), key
    assert any(".lora_B." in k and v.abs().max() > 0 for k, v in state.items())
    saved = checkpoint.load_checkpoint(checkpoint.latest_checkpoint(tmp_path / "lora"))
    assert len(saved["optimizer"]["state"]) == sum(".lora_" in k for k in state)  # moments for the adapters only

    split = _config(steps=8, checkpoint_every=4, init_from=tmp_path / "base", lora_rank=4, lr=1e-2)
    train_dit(split, _buckets(), tmp_path / "split", progress=False, stop_at=4)
    resumed = train_dit(split, _buckets(), tmp_path / "split", progress=False)
    for key, value in whole.ema.shadow.items():
        torch.testing.assert_close(resumed.ema.shadow[key], value, rtol=0, atol=0, msg=key)
    with pytest.raises(ValueError, match="LoRA rank 4"):
        train_dit(_config(steps=9, init_from=tmp_path / "base", lora_rank=8), _buckets(), tmp_path / "split", progress=False)

    exported = ema_denoiser(whole)
    assert has_lora(exported.transformer)
    x, t = torch.randn(1, 4, 3, 4, 4), torch.full((1,), 0.5)
    with torch.no_grad():
        adapted = exported(x, t, ["a red ball"])
        merged = merge_lora(exported.transformer)
        assert list(merged.state_dict()) == list(base.transformer.state_dict())
        torch.testing.assert_close(exported(x, t, ["a red ball"]), adapted, rtol=1e-4, atol=1e-5)
        assert (adapted - base(x, t, ["a red ball"])).abs().max() > 1e-3
    newest, _, _ = load_run_ema(tmp_path / "lora")
    assert has_lora(newest.transformer) and newest.state_dict().keys() == whole.ema.shadow.keys()


def test_lora_needs_a_model_to_adapt():
    with pytest.raises(ValueError, match="init_from"):
        _config(lora_rank=4)
    with pytest.raises(ValueError, match="lora_alpha needs a lora_rank"):
        _config(lora_alpha=2.0)
    with pytest.raises(ValueError, match="above 0"):
        _config(lora_rank=4, lora_alpha=-1.0, init_from="somewhere")


def test_the_command_line_trains_an_adapter_and_generates_with_it(tmp_path, capsys):
    from kinetoscope.cli.main import main
    from kinetoscope.io.video import read_video

    debug = ["train", "dit", "--preset", "debug", "--steps", "2", "--workers", "1", "--threads", "1", "--no-progress",
             "--val-every", "0", "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert main([*debug, "--run-dir", str(tmp_path / "base")]) == 0
    assert main([*debug, "--run-dir", str(tmp_path / "lora"), "--init-from", str(tmp_path / "base" / "final"),
                 "--lora-rank", "2", "--lr", "0.05"]) == 0  # fmt: skip
    adapter = tmp_path / "lora" / "final" / "lora"
    assert (adapter / "adapter_model.safetensors").is_file() and (adapter / "adapter_config.json").is_file()
    videos = {}
    for name, model in (("merged", ["--model", tmp_path / "lora" / "final"]),
                        ("adapter", ["--model", tmp_path / "base" / "final", "--lora", adapter]),
                        ("base", ["--model", tmp_path / "base" / "final"])):  # fmt: skip
        out = tmp_path / f"{name}.gif"
        assert main(["generate", "a red ball", "-o", str(out), "--num-frames", "5", "--steps", "2", *map(str, model)]) == 0
        videos[name] = read_video(out)[0]
    assert (videos["merged"] == videos["adapter"]).all()  # the folder's adapter is what the export merged
    assert not (videos["merged"] == videos["base"]).all()
    # The evaluations take the adapter too, and say so in their settings.
    capsys.readouterr()
    reports = {}
    for name, model in (("merged", ["--model", tmp_path / "lora" / "final"]),
                        ("adapter", ["--model", tmp_path / "base" / "final", "--lora", adapter, "--lora-scale", "1"])):  # fmt: skip
        assert main(["eval", "t2v", "--per-group", "1", "--steps", "2", "--json", *map(str, model)]) == 0
        reports[name] = json.loads(capsys.readouterr().out)
    assert reports["adapter"]["settings"]["lora"] == str(adapter) and "lora" not in reports["merged"]["settings"]
    assert reports["adapter"]["rows"] == reports["merged"]["rows"]
    assert main(["eval", "t2v", "--lora", str(tmp_path / "nowhere")]) == 2
    assert "--lora" in capsys.readouterr().err
    assert main([*debug, "--run-dir", str(tmp_path / "bad"), "--lora-rank", "2"]) == 2
    assert "--lora-rank adapts a trained model: it needs --init-from" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
