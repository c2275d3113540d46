"""``data curate`` end to end on real files encoded here (see curate_media): every input
accounted for, cuts where they are, probing, captions, scores, resume, shards, the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("cv2")
pytest.importorskip("scenedetect")

from curate_media import CUTS, make_corpus  # noqa: E402

from kinetoscope.data.curate import runner  # noqa: E402
from kinetoscope.data.curate.config import CurateConfig  # noqa: E402
from kinetoscope.data.curate.inputs import list_sources  # noqa: E402
from kinetoscope.data.curate.table import read_metadata, read_table  # noqa: E402
from kinetoscope.io.video import read_video  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("corpus")
    return folder, make_corpus(folder)


@pytest.fixture(scope="module")
def curated(corpus, tmp_path_factory) -> tuple[Path, runner.CurateSummary]:
    out = tmp_path_factory.mktemp("curated")
    return out, runner.curate(list_sources(corpus[0]), out, CurateConfig(), progress=False)


def by_source(rows: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["source"], []).append(row)
    return grouped


def test_every_input_is_a_clip_source_or_rejected(corpus, curated):
    folder, expected = corpus
    out, summary = curated
    kept = {row["source"] for row in read_table(out / "metadata.csv")}
    rejected = {row["source"] for row in read_table(out / "rejected.csv")}
    assert kept | rejected == set(expected) and not kept & rejected
    assert summary.inputs == len(expected) and summary.rejected == len(rejected) == 5


def test_scene_cuts_are_found_within_one_frame(curated):
    clips = by_source(read_table(curated[0] / "metadata.csv"))
    for name, cut in CUTS.items():
        starts = [int(row["start_frame"]) for row in clips[name]]
        assert len(starts) == 2 and starts[0] == 0 and abs(starts[1] - cut) <= 1, (name, starts)
        assert [row["scene"] for row in clips[name]] == ["0", "1"]
    sources = read_table(curated[0] / "sources.csv")
    assert all(row["scenes"] == "1" for row in sources if row["source"] not in CUTS)  # no false cuts


def test_bad_files_are_rejected_with_the_reason(curated):
    reasons = {row["source"]: (row["stage"], row["reason"]) for row in read_table(curated[0] / "rejected.csv")}
    assert reasons["empty.mp4"] == ("probe", "empty file (0 bytes)")
    assert "not a readable video" in reasons["notes.mp4"][1]
    assert "truncated" in reasons["truncated.mp4"][1]
    assert "unsupported video codec" in reasons["unsupported.mkv"][1]
    assert reasons["one_frame.mp4"][0] == "scenes" and "--min-seconds" in reasons["one_frame.mp4"][1]


def test_probe_records_codec_size_rotation_audio_and_variable_rate(curated):
    sources = {row["source"]: row for row in read_table(curated[0] / "sources.csv")}
    codecs = {name: row["codec"] for name, row in sources.items()}
    assert {codecs["two_scenes.mp4"], codecs["portrait/two_scenes_vp9.webm"], codecs["square_mpeg4.mp4"]} == {
        "h264", "vp9", "mpeg4"}  # fmt: skip
    # Sizes as shown: the rotated 64x36 picture is 36 wide and 64 tall.
    assert (sources["rotated.mp4"]["rotation"], sources["rotated.mp4"]["height"], sources["rotated.mp4"]["width"]) == (
        "90", "64", "36")  # fmt: skip
    assert [name for name, row in sources.items() if row["has_audio"] == "1"] == ["with_audio.mp4"]
    assert [name for name, row in sources.items() if row["vfr"] == "1"] == ["vfr.mkv"]
    assert float(sources["vfr.mkv"]["duration"]) == pytest.approx(1.3, abs=0.1)


def test_clips_match_their_rows_in_every_aspect_ratio(curated):
    rows = read_metadata(curated[0] / "metadata.csv")
    for row in rows:
        frames, fps = read_video(row["path"])
        assert frames.shape == (int(row["num_frames"]), int(row["height"]), int(row["width"]), 3)
        assert float(row["aspect_ratio"]) == pytest.approx(frames.shape[1] / frames.shape[2], abs=1e-4)
        assert fps == pytest.approx(float(row["fps"]), rel=0.01)
    ratios = {row["source"]: float(row["width"]) / float(row["height"]) for row in rows}
    assert ratios["two_scenes.mp4"] == pytest.approx(16 / 9, rel=0.02)
    assert ratios["portrait/two_scenes_vp9.webm"] == pytest.approx(9 / 16, rel=0.02)
    assert ratios["square_mpeg4.mp4"] == 1 and ratios["cinema_21x9.mkv"] == pytest.approx(21 / 9)


def test_rotated_source_gives_upright_clips(curated):
    (row,) = by_source(read_metadata(curated[0] / "metadata.csv"))["rotated.mp4"]
    frames, _ = read_video(row["path"])
    # 90 degrees counter-clockwise: the stored top-left block shows at the bottom left.
    assert frames.shape[1:3] == (64, 36)
    assert frames[0, -10:, :10].mean() > 230 and frames[0, :10, :10].mean() < 200


def test_variable_frame_rate_clip_keeps_its_duration(curated):
    (row,) = by_source(read_table(curated[0] / "metadata.csv"))["vfr.mkv"]
    assert float(row["duration"]) == pytest.approx(1.3, abs=0.1)
    assert float(row["fps"]) == pytest.approx(int(row["num_frames"]) / float(row["duration"]), rel=0.1)


def test_captions_come_from_sidecars_per_clip(curated):
    clips = by_source(read_table(curated[0] / "metadata.csv"))
    assert [row["text"] for row in clips["two_scenes.mp4"]] == ["a test card", "a fractal zoom"]  # SRT, per scene
    assert clips["square_mpeg4.mp4"][0]["text"] == "a square test card"  # JSON
    assert clips["cinema_21x9.mkv"][0]["text"] == "a wide test card"  # TXT, spaces collapsed
    assert clips["cinema_21x9.mkv"][0]["text_source"] == "sidecar"
    assert clips["vfr.mkv"][0]["text"] == clips["vfr.mkv"][0]["text_source"] == ""


def test_scores_flag_still_clips_and_near_duplicates(curated):
    clips = by_source(read_table(curated[0] / "metadata.csv"))
    assert clips["still_bars.mp4"][0]["motion_flag"] == "static" and float(clips["still_bars.mp4"][0]["motion"]) < 0.1
    assert float(clips["two_scenes.mp4"][1]["motion"]) > 1 and clips["two_scenes.mp4"][1]["motion_flag"] == ""
    original = clips["cinema_21x9.mkv"][0]["path"]
    assert clips["cinema_copy.mp4"][0]["dup_of"] == original
    assert sum(bool(row["dup_of"]) for rows in clips.values() for row in rows) == 1
    for rows in clips.values():
        for row in rows:
            assert float(row["sharpness"]) > 0 and 0 < float(row["brightness"]) < 1
            assert float(row["black_frames"]) == 0 and float(row["letterbox"]) == 0
            assert row["aesthetic"] == row["text_overlay"] == ""  # no model given
            assert len(row["phash"]) == 48


def test_rerun_skips_finished_work(corpus, curated):
    out, _ = curated
    before = (out / "metadata.csv").read_text()
    summary = runner.curate(list_sources(corpus[0]), out, CurateConfig(), progress=False)
    assert (summary.processed, summary.skipped) == (0, len(corpus[1]))
    assert (out / "metadata.csv").read_text() == before


def test_interrupted_run_keeps_what_it_finished(corpus, curated, tmp_path, monkeypatch):
    done = []

    def interrupted(job):
        if len(done) == 3:
            raise KeyboardInterrupt
        done.append(job[0].name)
        return real(job)

    real = runner.curate_source
    monkeypatch.setattr(runner, "curate_source", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner.curate(list_sources(corpus[0]), tmp_path, CurateConfig(), progress=False)
    tables = {row["source"] for name in ("metadata.csv", "rejected.csv") for row in read_table(tmp_path / name)}
    assert tables == set(done)
    monkeypatch.setattr(runner, "curate_source", real)
    summary = runner.curate(list_sources(corpus[0]), tmp_path, CurateConfig(), progress=False)
    assert (summary.processed, summary.skipped) == (len(corpus[1]) - 3, 3)
    assert (tmp_path / "metadata.csv").read_text() == (curated[0] / "metadata.csv").read_text()


def test_shards_merged_equal_one_run(corpus, curated, tmp_path, run_cli):
    sources = list_sources(corpus[0])
    counts = [runner.curate(sources, tmp_path, CurateConfig(), shard=(k, 3), progress=False).inputs for k in (1, 2, 3)]
    assert sum(counts) == len(sources) and max(counts) < len(sources)
    result = run_cli("data", "merge", tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("metadata.csv", "sources.csv", "rejected.csv"):
        assert (tmp_path / name).read_text() == (curated[0] / name).read_text(), name


def test_merge_refuses_a_missing_shard(corpus, tmp_path, run_cli):
    runner.curate(list_sources(corpus[0])[:2], tmp_path, CurateConfig(), shard=(1, 2), progress=False)
    result = run_cli("data", "merge", tmp_path)
    assert result.returncode == 2 and "shards 2/2 are missing" in result.stderr


def test_cli_curates_with_workers_from_a_csv_list(corpus, tmp_path, run_cli):
    folder = corpus[0]
    listing = tmp_path / "list.csv"
    listing.write_text(f"path\n{folder / 'two_scenes.mp4'}\n{folder / 'notes.mp4'}\nmissing.mp4\n")
    out = tmp_path / "out"
    result = run_cli("data", "curate", listing, "-o", out, "--workers", 2, "--quiet", "--short-side", 36)
    assert result.returncode == 0, result.stderr
    assert "3 inputs: 2 clips from 1 files, 2 rejected" in result.stdout
    rejected = {row["source"]: row["reason"] for row in read_table(out / "rejected.csv")}
    assert rejected["missing.mp4"] == "no such file" and set(rejected) == {"missing.mp4", str(folder / "notes.mp4")}
    assert {row["height"] for row in read_table(out / "metadata.csv")} == {"36"}  # --short-side


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--shard", "0/2"], "--shard: '0/2'"),
        (["--min-seconds", "5", "--max-seconds", "1"], "min_seconds"),
        (["--workers", "0"], "--workers: 0"),
        (["--captioner", "/no/such/model"], "--captioner /no/such/model"),
        (["--aesthetic-model", "/no/such.pt"], "--aesthetic-model /no/such.pt"),
    ],
)
def test_cli_rejects_bad_arguments_in_one_line(corpus, tmp_path, run_cli, args, named):
    result = run_cli("data", "curate", corpus[0], "-o", tmp_path / "out", *args)
    assert result.returncode == 2 and named in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_cli_names_a_missing_input(tmp_path, run_cli):
    result = run_cli("data", "curate", tmp_path / "nothing", "-o", tmp_path / "out")
    assert result.returncode == 2 and "no such folder or CSV file" in result.stderr


def test_without_the_extra_it_says_which_to_install(monkeypatch, capsys, tmp_path):
    from kinetoscope.cli.main import main

    monkeypatch.setitem(sys.modules, "scenedetect", None)
    assert main(["data", "curate", str(tmp_path), "-o", str(tmp_path / "out")]) == 2
    assert "pip install 'kinetoscope[curate]'" in capsys.readouterr().err


def test_filter_keeps_rows_within_thresholds(curated, tmp_path, run_cli):
    out = tmp_path / "kept" / "filtered.csv"
    result = run_cli("data", "filter", curated[0] / "metadata.csv", "-o", out, "--min", "motion=1",
                     "--max", "black_frames=0", "--no-duplicates", "--no-static")  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = read_metadata(out)
    everything = read_metadata(curated[0] / "metadata.csv")
    expected = [r for r in everything if float(r["motion"]) >= 1 and not r["dup_of"] and r["motion_flag"] != "static"]
    assert [r["path"] for r in rows] == [r["path"] for r in expected] and 0 < len(rows) < len(everything)
    assert all(Path(r["path"]).is_file() for r in rows)  # paths rewritten relative to the new table
    assert f"kept {len(rows)} of {len(everything)}" in result.stdout


@pytest.mark.parametrize(
    ("args", "named"),
    [(["--min", "wobble=1"], "no column 'wobble'"), (["--min", "aesthetic=5"], "--aesthetic-model"),
     (["--max", "motion"], "COLUMN=NUMBER")],
)  # fmt: skip
def test_filter_names_bad_thresholds(curated, tmp_path, run_cli, args, named):
    result = run_cli("data", "filter", curated[0] / "metadata.csv", "-o", tmp_path / "f.csv", *args)
    assert result.returncode == 2 and named in result.stderr


def test_cached_latents_train_the_dit(curated, tmp_path, run_cli):
    cache = tmp_path / "cache"
    result = run_cli("data", "cache-latents", curated[0] / "metadata.csv", "-o", cache, "--quiet")
    assert result.returncode == 0, result.stderr
    from kinetoscope.data.latent_cache import load_buckets

    buckets = load_buckets(cache)
    clips = read_table(curated[0] / "metadata.csv")
    assert sum(b.latents.shape[0] for b in buckets) == len(clips)
    for shard in cache.glob("*.safetensors"):
        frames, size, _ = shard.stem.split("_")
        height, width = map(int, size.split("x"))
        # 1 + 4k frames (the VAE's 4x in time), sides a multiple of 16 (its 8x in space, the DiT's 2x2 patch).
        assert (int(frames[1:]) - 1) % 4 == 0 and height % 16 == 0 and width % 16 == 0
    assert all(b.shape[2] % 2 == 0 and b.shape[3] % 2 == 0 for b in buckets)
    texts = {r["text"] for b in buckets for r in b.records}
    assert "a fractal zoom" in texts
    shapes = {b.shape[1:] for b in buckets}
    assert len(shapes) >= 3  # 16:9, 9:16, 1:1 and 21:9 clips land in their own buckets
    again = run_cli("data", "cache-latents", curated[0] / "metadata.csv", "-o", cache, "--quiet")
    assert again.returncode == 0, again.stderr  # resumes: every shard kept
    run = tmp_path / "run"
    trained = run_cli("train", "dit", "--data", cache, "--preset", "debug", "--steps", 2, "--run-dir", run,
                      "--no-progress", "--threads", 1)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert "trained to step 2 of 2" in trained.stdout and (run / "final" / "model_index.json").is_file()
    assert "no validation: the largest bucket (3 clips) is too small" in trained.stdout
    exported = run_cli("train", "dit", "--run-dir", run, "--export-now", "--export", tmp_path / "mid")
    assert exported.returncode == 0, exported.stderr
    assert "step 2 of 2" in exported.stdout and (tmp_path / "mid" / "transformer" / "config.json").is_file()
    empty = run_cli("train", "dit", "--run-dir", tmp_path / "nothing-here", "--export-now")
    assert empty.returncode == 2 and "no such folder" in empty.stderr and "Traceback" not in empty.stderr


def _train_dit_over(vae_config, curated, tmp_path, run_cli) -> Path:
    """A one-step debug DiT trained on the curated clips cached through a random VAE of ``vae_config``."""
    import torch

    from kinetoscope.vae import CausalVideoVAE

    torch.manual_seed(0)
    vae = CausalVideoVAE(vae_config).save_pretrained(tmp_path / "vae")
    cache = tmp_path / "cache"
    result = run_cli("data", "cache-latents", curated[0] / "metadata.csv", "-o", cache, "--vae", vae, "--quiet")
    assert result.returncode == 0, result.stderr
    run = tmp_path / "run"
    trained = run_cli("train", "dit", "--data", cache, "--vae", vae, "--preset", "debug", "--steps", 1, "--run-dir", run,
                      "--no-progress", "--threads", 1)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    return run / "final"


def test_the_dit_takes_its_latent_channels_from_the_vae(curated, tmp_path, run_cli):
    from kinetoscope.vae import PRESETS

    model = _train_dit_over(PRESETS["tiny"](), curated, tmp_path, run_cli)  # 4 latent channels, not 8
    config = json.loads((model / "transformer" / "config.json").read_text())
    assert config["in_channels"] == 4


def test_over_a_4x_vae_the_dit_patches_keep_16_pixels_per_token(curated, tmp_path, run_cli):
    from kinetoscope.io.video import read_video
    from kinetoscope.vae import PRESETS

    model = _train_dit_over(PRESETS["tiny"]().with_spatial_compression(4), curated, tmp_path, run_cli)
    config = json.loads((model / "transformer" / "config.json").read_text())
    assert config["patch_size"] == [1, 4, 4]  # the preset's 1 x 2 x 2 over an 8x VAE: 16 x 16 pixels either way

    # ... and generates at a size that is a multiple of the VAE's 4 but not of a token's 16 pixels.
    out = tmp_path / "out.mp4"
    made = run_cli("generate", "a red circle moves left", "-o", out, "--model", model, "--num-frames", 5,
                   "--height", 40, "--width", 48, "--steps", 2, "--seed", 0)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert read_video(out)[0].shape[:3] == (5, 40, 48)
