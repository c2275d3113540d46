"""`kinetoscope generate`, `train dit` and `eval t2v` through the installed console script."""

from __future__ import annotations

import json

import pytest

from kinetoscope.io.video import read_video


def test_generate_writes_a_video(run_cli, tiny_model_dir, tmp_path):
    out = tmp_path / "clip.mp4"
    result = run_cli("generate", "a red ball moving left", "-o", out, "--model", tiny_model_dir, "--steps", "2")
    assert result.returncode == 0, result.stderr
    frames, fps = read_video(out)
    assert frames.shape == (16, 64, 64, 3) and fps == 8
    assert "prompt: A " in result.stderr and "red circle moves" in result.stderr


def test_generate_in_bfloat16_on_the_asked_device(run_cli, tiny_model_dir, tmp_path):
    out = tmp_path / "clip.gif"
    result = run_cli("generate", "a red ball moving left", "-o", out, "--model", tiny_model_dir, "--steps", "2",
                     "--num-frames", "5", "--device", "cpu", "--dtype", "bfloat16")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert read_video(out)[0].shape == (5, 64, 64, 3)


def test_generate_with_the_stochastic_sampler(run_cli, tiny_model_dir, tmp_path):
    runs = {}
    for name, args in (("a", ["--sampler", "sde"]), ("b", ["--sampler", "sde"]), ("c", ["--sampler", "sde", "--eta", "0.3"])):
        out = tmp_path / f"{name}.gif"
        result = run_cli("generate", "a red ball", "-o", out, "--model", tiny_model_dir, "--steps", "3", "--num-frames", "5", *args)
        assert result.returncode == 0, result.stderr
        runs[name] = read_video(out)[0]
    assert (runs["a"] == runs["b"]).all() and not (runs["a"] == runs["c"]).all()


def test_generate_with_contrastive_guidance(run_cli, tiny_model_dir, tmp_path):
    prompt = "A large red circle moves slowly to the right on a black background."
    runs = {}
    for name, args in (("off", ["--contrast-scale", "0"]), ("on", ["--contrast-scale", "3", "--contrast-interval", "0,1"]),
                       ("named", ["--contrast-scale", "3", "--contrast-interval", "0,1", "--contrast-prompt",
                                  prompt.replace("right", "left")])):  # fmt: skip
        out = tmp_path / f"{name}.gif"
        result = run_cli("generate", prompt, "-o", out, "--model", tiny_model_dir, "--steps", "3", "--num-frames", "5", *args)
        assert result.returncode == 0, result.stderr
        runs[name] = read_video(out)[0].astype(int)
    assert (runs["on"] != runs["off"]).any()
    assert abs(runs["on"] - runs["named"]).max() <= 1  # the automatic contrast is the reversed caption


def test_generate_one_frame_is_an_image(run_cli, tiny_model_dir, tmp_path):
    out = tmp_path / "image.png"
    result = run_cli("generate", "a blue box", "-o", out, "--num-frames", "1", "--model", tiny_model_dir,
                     "--steps", "2", "--width", "112")  # fmt: skip
    assert result.returncode == 0, result.stderr
    frames, _ = read_video(out)
    assert frames.shape == (1, 64, 112, 3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--num-frames", "0"], "--num-frames"),
        (["--height", "60"], "height"),
        (["--steps", "0"], "num_inference_steps"),
        (["--guidance-rescale", "1.5"], "--guidance-rescale"),
        (["--shift", "0"], "--shift"),
        (["-o", "x.avi"], "x.avi"),
        (["-o", "x.png"], "png"),
        (["--model", "nowhere"], "nowhere"),
        (["--device", "nonsense"], "--device nonsense"),
        (["--dtype", "int8"], "--dtype"),
        (["--lora", "nowhere"], "--lora nowhere"),
        (["--lora-scale", "nan"], "--lora-scale"),
        (["--eta", "2"], "--eta"),
        (["--guidance-interval", "0.5,0.2"], "--guidance-interval"),
        (["--guidance-interval", "0.5"], "--guidance-interval"),
        (["--contrast-scale", "-1"], "--contrast-scale"),
        (["--contrast-interval", "1,0.5"], "--contrast-interval"),
    ],
)
def test_generate_bad_input_is_one_line_and_exit_2(run_cli, tiny_model_dir, tmp_path, args, message):
    if "-o" not in args:
        args = [*args, "-o", str(tmp_path / "out.mp4")]
    if "--model" not in args:
        args = [*args, "--model", str(tiny_model_dir)]
    result = run_cli("generate", "a red ball", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.mp4").exists()


def test_generate_empty_prompt_is_refused(run_cli, tiny_model_dir, tmp_path):
    result = run_cli("generate", "  ", "-o", tmp_path / "a.mp4", "--model", tiny_model_dir)
    assert result.returncode == 2 and "PROMPT" in result.stderr


def test_eval_t2v_prints_a_table_per_object_count(run_cli, tiny_model_dir):
    result = run_cli("eval", "t2v", "--model", tiny_model_dir, "--per-group", "1", "--steps", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    kinds = {row["kind"] for row in report["rows"]}
    assert kinds == {"canonical", "paraphrase"}
    assert set(report["summary"]) == {"1", "2"}
    overall = report["summary"]["1"]["all"]
    assert 0.0 <= overall["all_correct"] <= 1.0
    low, high = overall["all_correct_interval"]
    assert 0.0 <= low <= overall["all_correct"] <= high <= 1.0 and high - low > 0.3  # 2 prompts: a wide interval
    assert all(isinstance(row["misses"], list) for row in report["rows"])
    groups = report["by_size_and_speed"]  # the one-object prompts by asked size and speed
    assert sum(g["prompts"] for g in groups.values()) == report["summary"]["1"]["all"]["prompts"]
    still = report["still_objects"]  # objects asked to stay still: alone, and beside a moving one
    assert set(still) == {"alone", "beside_a_mover"} and still["alone"]["moved"] <= still["alone"]["objects"]
    missed = [row for row in report["rows"] if not row["all_correct"]]
    assert missed and all(row["misses"] for row in missed)  # a one-step random model misses; each says how
    result = run_cli("eval", "t2v", "--model", tiny_model_dir, "--per-group", "1", "--steps", "1", "--misses", "2",
                     "--guidance-rescale", "0.7", "--shift", "3")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "95% interval" in result.stdout.splitlines()[0]
    assert "one object, all correct by asked size and speed: " in result.stdout
    block = result.stdout.split("most common misses, 1 object")[1].split("\n\n")[0].strip().splitlines()
    assert 2 <= len(block) <= 3 and "->" in block[1]
    result = run_cli("eval", "t2v", "--model", tiny_model_dir, "--misses", "-1")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--misses" in result.stderr
    result = run_cli("eval", "t2v", "--model", tiny_model_dir, "--guidance-rescale", "2")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--guidance-rescale" in result.stderr


@pytest.mark.slow
def test_train_dit_debug_exports_a_model_that_generates(run_cli, tmp_path):
    result = run_cli("train", "dit", "--preset", "debug", "--run-dir", tmp_path / "run", "--workers", "1",
                     "--no-progress", "--steps", "6", timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr
    model = tmp_path / "run" / "final"
    assert (model / "model_index.json").is_file()
    out = tmp_path / "clip.gif"
    result = run_cli("generate", "a green triangle", "-o", out, "--model", model, "--steps", "2")
    assert result.returncode == 0, result.stderr
    assert read_video(out)[0].shape == (16, 64, 64, 3)
