"""The curation stages one at a time: clip cutting, sidecars, hashes, quality and motion
measures, plug-in captioners and scorers, shards, latent buckets."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("scenedetect")

from curate_media import encode, lavfi  # noqa: E402

from kinetoscope.data.curate import runner  # noqa: E402
from kinetoscope.data.curate.captions import Captioner, Segment, caption_from_segments, read_sidecar  # noqa: E402
from kinetoscope.data.curate.config import CurateConfig  # noqa: E402
from kinetoscope.data.curate.dedup import find_duplicates, phash  # noqa: E402
from kinetoscope.data.curate.inputs import Source, in_shard, list_sources, parse_shard  # noqa: E402
from kinetoscope.data.curate.latents import ClipLatentsConfig, bucket_size, frame_count  # noqa: E402
from kinetoscope.data.curate.motion import MotionMeter  # noqa: E402
from kinetoscope.data.curate.probe import Frame  # noqa: E402
from kinetoscope.data.curate.quality import QualityMeter, blockiness, letterbox_fraction  # noqa: E402
from kinetoscope.data.curate.scenes import cut_clips  # noqa: E402
from kinetoscope.data.curate.table import read_table  # noqa: E402
from kinetoscope.errors import KinetoscopeError  # noqa: E402
from kinetoscope.io.video import read_video  # noqa: E402


def frame(index: int, time: float, bgr: np.ndarray) -> Frame:
    source = av.VideoFrame.from_ndarray(bgr[..., ::-1].copy(), format="rgb24").reformat(format="yuv420p")
    return Frame(index, time, bgr, source)


# Clips from scenes.


def test_long_scenes_split_and_short_rests_drop():
    times = np.arange(50) / 10.0  # 5 s at 10 fps
    ends = times + 0.1
    assert cut_clips((0, 50), times, ends, 1.0, 2.0) == [(0, 20), (20, 40), (40, 50)]
    assert cut_clips((0, 45), times, ends, 1.0, 2.0) == [(0, 20), (20, 40)]  # 0.5 s rest dropped
    assert cut_clips((3, 8), times, ends, 1.0, 2.0) == []


def test_clip_lengths_follow_timestamps_not_frame_counts():
    times = np.array([0.0, 0.05, 0.2, 0.25, 0.4, 0.45, 0.6, 0.65, 0.8, 0.85])  # 50/150 ms gaps
    ends = np.append(times[1:], 1.0)
    assert cut_clips((0, 10), times, ends, 0.1, 0.4) == [(0, 4), (4, 8), (8, 10)]


def test_one_frame_is_a_clip_when_the_minimum_allows():
    assert cut_clips((0, 1), np.array([0.0]), np.array([0.04]), 0.0, 5.0) == [(0, 1)]
    assert cut_clips((0, 1), np.array([0.0]), np.array([0.04]), 0.5, 5.0) == []


# Sidecar captions.


def test_srt_json_and_txt_sidecars_read_as_timed_segments(tmp_path):
    srt = tmp_path / "a.srt"
    srt.write_bytes(b"1\r\n00:00:01,500 --> 00:00:03,000\r\n<b>Hello</b>\r\nthere\r\n\r\n2\r\n00:00:03,000 --> 00:00:04,000\r\nbye\r\n")
    assert read_sidecar(srt) == [Segment(1.5, 3.0, "Hello there"), Segment(3.0, 4.0, "bye")]
    listed = tmp_path / "b.json"
    listed.write_text('{"segments": [{"start": 0, "end": 2, "text": "one"}, {"start": 2, "end": 4, "caption": "two"}]}')
    segments = read_sidecar(listed)
    assert caption_from_segments(segments, 0.5, 1.5) == "one"
    assert caption_from_segments(segments, 1.0, 3.0) == "one two"
    assert caption_from_segments(segments, 5.0, 6.0) == ""
    plain = tmp_path / "c.txt"
    plain.write_text("\ufeff  a  cat\non a mat ")
    assert caption_from_segments(read_sidecar(plain), 100.0, 101.0) == "a cat on a mat"


def test_a_broken_sidecar_is_named_and_curation_goes_on(tmp_path):
    broken = tmp_path / "v.json"
    broken.write_text("{not json")
    with pytest.raises(KinetoscopeError, match="v.json: not a caption JSON"):
        read_sidecar(broken)
    encode(tmp_path / "v.mp4", lavfi("testsrc2=size=64x36:rate=12", 14))
    runner.curate(list_sources(tmp_path, exclude=tmp_path / "out"), tmp_path / "out", CurateConfig(), progress=False)
    (source,) = read_table(tmp_path / "out" / "sources.csv")
    assert source["clips"] == "1" and source["warning"].startswith("caption file ignored: not a caption JSON")


# Near-duplicates.


def test_duplicates_point_at_the_first_kept_clip_within_the_distance():
    base = 0x0123456789ABCDEF
    code = lambda h: f"{h:016x}" * 3  # noqa: E731
    codes = [code(base), code(base ^ 0b111), code(base ^ (0xFFFF << 20)), code(base ^ 0b11111), ""]
    assert find_duplicates(codes, 4) == [None, 0, None, None, None]
    assert find_duplicates(codes, 5) == [None, 0, None, 0, None]


def test_phash_survives_rescaling_and_recompression_but_not_another_picture():
    picture = cv2.cvtColor(lavfi("testsrc2=size=128x72:rate=8", 1)[0], cv2.COLOR_RGB2GRAY)
    smaller = cv2.resize(picture, (96, 54), interpolation=cv2.INTER_AREA)
    _, jpeg = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 30])
    other = cv2.cvtColor(lavfi("mandelbrot=size=128x72:rate=8", 1)[0], cv2.COLOR_RGB2GRAY)
    h = phash(picture)
    assert (h ^ phash(smaller)).bit_count() <= 4 and (h ^ phash(cv2.imdecode(jpeg, 0))).bit_count() <= 4
    assert (h ^ phash(other)).bit_count() > 16


# Quality and motion measures.


def test_letterbox_share_counts_bars_on_all_sides():
    picture = np.full((72, 128), 120, np.uint8)
    picture[:9], picture[-9:] = 10, 10  # bars of 9 + 9 rows: a quarter of the height
    assert letterbox_fraction(picture) == pytest.approx(0.25)
    picture[:, :16] = 0  # and a pillar of 16 columns
    assert letterbox_fraction(picture) == pytest.approx(1 - 0.75 * (112 / 128))


def test_blockiness_sees_an_eight_pixel_grid():
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.integers(0, 255, (64, 64)).astype(np.uint8), (0, 0), 3)
    blocky = np.kron(rng.integers(0, 255, (8, 8)), np.ones((8, 8))).astype(np.uint8)
    assert blockiness(smooth) < 0.2 < 1 < blockiness(blocky)


def test_quality_meter_flags_black_and_solid_frames_and_blur():
    meter = QualityMeter(block_interval=0.0)
    sharp = lavfi("testsrc2=size=64x36:rate=8", 1)[0][..., ::-1].copy()
    frames = [np.zeros((36, 64, 3), np.uint8), np.full((36, 64, 3), (30, 180, 90), np.uint8), sharp,
              cv2.GaussianBlur(sharp, (0, 0), 2)]  # fmt: skip
    for i, bgr in enumerate(frames):
        meter.add(frame(i, i / 8, bgr))
    assert meter.black == [True, False, False, False] and meter.solid == [True, True, False, False]
    assert meter.sharpness[2] > 3 * meter.sharpness[3]
    assert np.isnan(meter.letterbox[0]) and meter.letterbox[2] == 0
    assert all(np.isfinite(meter.blockiness))


def test_motion_is_percent_of_the_short_side_per_second():
    rng = np.random.default_rng(1)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (80, 200, 3)).astype(np.uint8), (0, 0), 2)
    meter = MotionMeter()
    for i in range(6):  # 2 px a frame at 10 fps on a 64 px short side: 31 %/s
        meter.add(frame(i, i / 10, np.ascontiguousarray(texture[8:72, 40 + 2 * i : 144 + 2 * i])))
    assert np.isnan(meter.speed[0])
    assert np.mean(meter.speed[1:]) == pytest.approx(2 / 64 * 100 * 10, rel=0.2)


# Plug-ins: captioners and scorers.


def test_plugin_captioner_and_torchscript_scorer_fill_their_columns(tmp_path):
    import torch

    class Brightness(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(1, 2, 3))

    model = tmp_path / "brightness.pt2"
    batch = torch.export.Dim("batch", min=1, max=16)
    example = (torch.rand(2, 3, 224, 224),)
    torch.export.save(torch.export.export(Brightness(), example, dynamic_shapes=({0: batch},)), str(model))
    folder = tmp_path / "in"
    folder.mkdir()
    green = np.zeros((14, 36, 64, 3), np.uint8)
    green[..., 1] = 200
    green[:, :, ::8] = 90  # some structure for the encoder
    encode(folder / "green.mp4", green)
    config = CurateConfig(captioner="curate_media:MeanColourCaptioner", aesthetic_model=str(model))
    runner.curate(list_sources(folder), tmp_path / "out", config, progress=False)
    (row,) = read_table(tmp_path / "out" / "metadata.csv")
    assert (row["text"], row["text_source"]) == ("a mostly green clip", "model")
    frames, _ = read_video(tmp_path / "out" / row["path"])
    assert float(row["aesthetic"]) == pytest.approx(frames.mean() / 255, abs=0.02) and row["text_overlay"] == ""


def test_a_bad_model_fails_the_run_before_any_work(tmp_path):
    (tmp_path / "bad.pt").write_text("not torchscript")
    with pytest.raises(KinetoscopeError, match="--aesthetic-model .*bad.pt: not a saved torch.export or TorchScript"):
        runner.curate([], tmp_path / "out", CurateConfig(aesthetic_model=str(tmp_path / "bad.pt")), progress=False)
    with pytest.raises(KinetoscopeError, match="--captioner curate_media:Nothing: cannot import"):
        runner.curate([], tmp_path / "out", CurateConfig(captioner="curate_media:Nothing"), progress=False)


def test_transformers_captioner_loads_a_local_model_folder(tmp_path):
    transformers = pytest.importorskip("transformers")
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers

    from kinetoscope.data.curate.captions import TransformersCaptioner

    words = ["<pad>", "<s>", "</s>", "<unk>", "a", "red", "clip", "of", "blue", "ball"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    encoder = transformers.ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                     image_size=32, patch_size=16)  # fmt: skip
    decoder = transformers.GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=len(words), n_positions=32,
                                      add_cross_attention=True, bos_token_id=1, eos_token_id=2, pad_token_id=0)  # fmt: skip
    config = transformers.VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 1, 0, 2
    torch.manual_seed(0)
    model = transformers.VisionEncoderDecoderModel(config)
    model.generation_config.suppress_tokens = [0, 1, 2, 3]  # random weights: make it say words, not stop
    model.save_pretrained(tmp_path)
    fast.save_pretrained(tmp_path)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    captioner = TransformersCaptioner(tmp_path, max_new_tokens=4)
    assert isinstance(captioner, Captioner)
    text = captioner.caption([np.zeros((36, 64, 3), np.uint8)] * 3)
    assert len(text.split()) == 4 and set(text.split()) <= set(words[4:])  # random words of its vocabulary
    with pytest.raises(KinetoscopeError, match="no such model folder"):
        TransformersCaptioner(tmp_path / "missing")


# Inputs and shards.


def test_every_source_falls_in_exactly_one_shard():
    sources = [Source(f"video_{i}.mp4", Path(f"video_{i}.mp4")) for i in range(200)]
    owners = [[k for k in (1, 2, 3, 4) if in_shard(s, (k, 4))] for s in sources]
    assert all(len(o) == 1 for o in owners) and {o[0] for o in owners} == {1, 2, 3, 4}
    for bad in ("3", "0/4", "5/4", "a/b"):
        with pytest.raises(KinetoscopeError, match="--shard"):
            parse_shard(bad)


def test_folder_inputs_skip_hidden_files_other_suffixes_and_the_output(tmp_path):
    for name in ("a.mp4", "sub/b.MOV", ".hidden/c.mp4", "d.txt", "out/clips/e.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [s.name for s in list_sources(tmp_path, exclude=tmp_path / "out")] == ["a.mp4", "sub/b.MOV"]


# Latent buckets.


def test_buckets_keep_the_aspect_ratio_in_multiples_of_sixteen():
    config = ClipLatentsConfig()
    assert bucket_size(1080, 1920, config, 16) == (48, 80)
    assert bucket_size(1920, 1080, config, 16) == (80, 48)
    assert bucket_size(500, 500, config, 16) == (64, 64)
    assert bucket_size(540, 1260, config, 16) == (48, 96)
    assert [frame_count(n, config, 4) for n in (1, 4, 5, 16, 17, 100)] == [1, 1, 5, 13, 17, 17]
    assert frame_count(40, ClipLatentsConfig(stride=2, num_frames=33), 4) == 17


def test_changed_options_redo_a_source_and_drop_its_old_clips(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    encode(folder / "v.mp4", lavfi("testsrc2=size=64x36:rate=12", 24))
    first = runner.curate(list_sources(folder), tmp_path / "out", CurateConfig(min_seconds=0.5, max_seconds=1.0),
                          progress=False)  # fmt: skip
    assert first.clips == 2
    second = runner.curate(list_sources(folder), tmp_path / "out", CurateConfig(), progress=False)
    assert (second.processed, second.clips) == (1, 1)
    assert len(list((tmp_path / "out" / "clips").rglob("*.mp4"))) == 1
