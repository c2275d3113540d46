"""The evaluations sample as asked (``--sampler``, ``--steps``, ...) and their JSON reports say how
the suite was made, the model's defaults filled in, so two reports can be told apart later."""

from __future__ import annotations

import json

import pytest

from kinetoscope.cli.main import main
from kinetoscope.pipelines.text_to_video import KinetoscopePipeline


@pytest.fixture
def sampled_with(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    calls: list[dict] = []
    original = KinetoscopePipeline.__call__

    def recording(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(KinetoscopePipeline, "__call__", recording)
    return calls


def test_eval_t2v_samples_with_the_asked_sampler_and_reports_its_settings(tiny_model_dir, sampled_with, capsys):
    code = main(["eval", "t2v", "--model", str(tiny_model_dir), "--per-group", "1", "--steps", "2", "--sampler", "heun",
                 "--shift", "2", "--seed", "3", "--dtype", "bfloat16", "--guidance-interval", "0.3,1", "--contrast-scale", "2", "--json"])  # fmt: skip
    assert code == 0
    assert sampled_with and all(c["sampler"] == "heun" and c["num_inference_steps"] == 2 for c in sampled_with)
    assert all(c["guidance_interval"] == (0.3, 1.0) and c["contrast_scale"] == 2.0 for c in sampled_with)
    settings = json.loads(capsys.readouterr().out)["settings"]
    assert settings == {"model": str(tiny_model_dir), "seed": 3, "steps": 2, "guidance": 7.0, "guidance_rescale": 0.0,
                        "guidance_interval": [0.3, 1.0], "shift": 2.0, "sampler": "heun", "eta": 1.0, "contrast_scale": 2.0,
                        "contrast_interval": [0.7, 1.0], "device": "cpu", "dtype": "bfloat16"}  # fmt: skip


def test_eval_conditioning_passes_the_sampler_to_every_task(tiny_model_dir, sampled_with, capsys):
    code = main(["eval", "conditioning", "--model", str(tiny_model_dir), "--per-task", "1", "--steps", "2",
                 "--tasks", "image,extend", "--sampler", "heun", "--json"])  # fmt: skip
    assert code == 0
    assert len(sampled_with) >= 2 and all(c["sampler"] == "heun" for c in sampled_with)
    settings = json.loads(capsys.readouterr().out)["settings"]
    assert settings["sampler"] == "heun" and settings["steps"] == 2 and settings["strength"] == 0.5
    assert settings["shift"] is None  # the model's: by the token count


def test_the_command_line_offers_exactly_the_pipelines_samplers():
    """The CLI spells the choices itself (importing the pipelines would import torch at start-up)."""
    import argparse

    from kinetoscope.cli.generate import add_guidance_arguments
    from kinetoscope.pipelines.sampling_defaults import SAMPLERS

    parser = argparse.ArgumentParser()
    add_guidance_arguments(parser)
    sampler = next(a for a in parser._actions if a.dest == "sampler")
    assert tuple(sampler.choices) == SAMPLERS
