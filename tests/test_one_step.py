"""The analyzer on a DiT's one-step predictions: how much of the prompt each noise level keeps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kinetoscope.evaluation.ceiling import reconstruction_adherence, vae_roundtrip
from kinetoscope.evaluation.one_step import one_step_roundtrip
from kinetoscope.shapes.render import render_random_clip


def test_at_time_zero_the_prediction_is_the_vae_round_trip(tiny_pipeline) -> None:
    clip = render_random_clip(5, height=32, width=48, num_frames=9)
    ours = one_step_roundtrip(tiny_pipeline, 0.0)(clip.frames, clip.caption)
    assert ours.shape == clip.frames.shape and ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, vae_roundtrip(tiny_pipeline.vae)(clip.frames))
    noisy = one_step_roundtrip(tiny_pipeline, 0.8)(clip.frames, clip.caption)
    assert np.abs(noisy.astype(int) - ours).mean() > 1  # the random DiT's guess is not the clip
    assert np.array_equal(noisy, one_step_roundtrip(tiny_pipeline, 0.8)(clip.frames, clip.caption))  # same noise
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        one_step_roundtrip(tiny_pipeline, 1.0)


def test_the_shipped_model_keeps_the_prompt_at_low_noise_and_loses_it_at_high() -> None:
    from kinetoscope.pipelines.text_to_video import KinetoscopePipeline

    pipe = KinetoscopePipeline.from_pretrained()
    low = reconstruction_adherence(one_step_roundtrip(pipe, 0.1), count=8)
    high = reconstruction_adherence(one_step_roundtrip(pipe, 0.95), count=8)
    assert low["all_correct"] >= 0.5 and low["color"] == 1.0
    assert high["all_correct"] < low["all_correct"] and high["shape"] < low["shape"]


# ~20 s of generation and judging; the evaluation itself is checked above and its refusals below
@pytest.mark.slow
def test_cli_prints_one_row_per_object_count_and_time(run_cli, tiny_model_dir) -> None:
    result = run_cli("eval", "one-step", "--model", tiny_model_dir, "--clips", 2, "--times", 0, 0.5,
                     "--objects", 1, 2, "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["objects"], r["t"]) for r in rows] == [(1, 0.0), (1, 0.5), (2, 0.0), (2, 0.5)]
    assert all(0 <= r["all_correct"] <= 1 and "direction" in r for r in rows)
    table = run_cli("eval", "one-step", "--model", tiny_model_dir, "--clips", 1, "--times", 0.3)
    assert table.returncode == 0 and "direction" in table.stdout and "0.30" in table.stdout


@pytest.mark.parametrize(("args", "named"), [(["--times", "1"], "[0, 1)"), (["--clips", "0"], "at least 1"),
                                             (["--model", "/no/such/folder"], "not a folder")])  # fmt: skip
def test_cli_rejects_bad_arguments(run_cli, args, named) -> None:
    result = run_cli("eval", "one-step", *args)
    assert result.returncode == 2 and named in result.stderr and "Traceback" not in result.stderr
