"""DiT training with a frozen pretrained text encoder (a tiny random BERT), its caption cache, its exported pipeline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kinetoscope.data.latent_cache import LatentBucket
from kinetoscope.data.shapes_latents import LatentBucketSpec, ShapesLatentsConfig
from kinetoscope.errors import KinetoscopeError
from kinetoscope.pipelines import KinetoscopePipeline, SamplingDefaults
from kinetoscope.shapes.vocabulary import caption_language
from kinetoscope.text import HFTextEncoder, WordTextEncoder
from kinetoscope.text.tokenizer import split_words
from kinetoscope.training.dit import CaptionCache, DiTTrainConfig, ema_denoiser, train_dit
from kinetoscope.transformer import DiTConfig

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

CAPTIONS = ("a red ball", "a blue box", "a green triangle moves left", "a small yellow square on white")
HIDDEN = 16


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    """A tiny random BERT with a word-level tokenizer that adds [CLS] and [SEP], as all-MiniLM-L6-v2's does."""
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", *sorted(set(split_words(" ".join(caption_language()))))]
    model = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    model.normalizer = tokenizers.normalizers.Lowercase()
    model.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    model.post_processor = tokenizers.processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=model, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    )
    config = transformers.BertConfig(
        vocab_size=len(words), hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )  # fmt: skip
    directory = tmp_path_factory.mktemp("bert")
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _config(encoder_dir: Path, **kwargs) -> DiTTrainConfig:
    data = ShapesLatentsConfig(buckets=(LatentBucketSpec(8, 32, 32, 16, 0.8), LatentBucketSpec(1, 32, 32, 16, 0.2)))
    model = DiTConfig(in_channels=4, text_dim=HIDDEN, width=64, depth=2, heads=2)
    common = {"tokens_per_batch": 128, "warmup_steps": 5, "lr": 2e-3, "checkpoint_every": 5}
    return DiTTrainConfig(**({"model": model, "text_encoder": str(encoder_dir), "data": data} | common | kwargs))


def _buckets() -> list[LatentBucket]:
    g = torch.Generator().manual_seed(0)
    records = [{"text": CAPTIONS[i % len(CAPTIONS)]} for i in range(16)]
    videos = torch.stack([(i % 4 - 1.5) + 0.1 * torch.randn(4, 3, 4, 4, generator=g) for i in range(16)])
    images = torch.stack([(i % 4 - 1.5) + 0.1 * torch.randn(4, 1, 4, 4, generator=g) for i in range(16)])
    return [LatentBucket(videos, records), LatentBucket(images, records)]


def test_the_cache_gives_the_encoders_states_at_real_tokens(bert_dir):
    encoder = HFTextEncoder.from_pretrained(bert_dir)
    cache = CaptionCache(encoder, torch.device("cpu"))
    prompts = [CAPTIONS[3], "", CAPTIONS[0], CAPTIONS[3]]
    cached, direct = cache.encode(prompts), encoder.encode(prompts)
    assert torch.equal(cached.mask, direct.mask) and sorted(cache.states) == sorted(set(prompts))
    torch.testing.assert_close(cached.hidden[cached.mask], direct.hidden[direct.mask], atol=1e-5, rtol=1e-5)
    assert bool((cached.hidden[~cached.mask] == 0).all())


def test_training_encodes_each_caption_once_and_leaves_the_encoder_unchanged(bert_dir, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    calls: list[list[str]] = []
    encode = HFTextEncoder.encode

    def counted(self, prompts, device=None):
        calls.append(list(prompts))
        return encode(self, prompts, device)

    monkeypatch.setattr(HFTextEncoder, "encode", counted)
    result = train_dit(_config(bert_dir, steps=6, caption_dropout=0.3), _buckets(), tmp_path, progress=False)

    captions = [c for call in calls for c in call]
    assert all(len(call) == 1 for call in calls) and len(captions) == len(set(captions))
    assert set(captions) == {*CAPTIONS, ""}  # 6 steps of 16 clips see every caption, and dropout
    cache = result.denoiser.text_encoder
    assert isinstance(cache, CaptionCache) and set(cache.states) == set(captions)
    assert all(key.startswith("transformer.") for key in result.denoiser.state_dict())
    assert set(result.ema.shadow) == set(result.denoiser.state_dict())
    fresh = transformers.AutoModel.from_pretrained(bert_dir).state_dict()
    for key, value in cache.encoder.model.state_dict().items():
        assert torch.equal(value, fresh[key]), key


def test_resuming_matches_an_uninterrupted_run_and_other_encoders_are_refused(bert_dir, tmp_path):
    torch.set_num_threads(1)
    whole = train_dit(_config(bert_dir, steps=8), _buckets(), tmp_path / "whole", progress=False)
    train_dit(_config(bert_dir, steps=8), _buckets(), tmp_path / "split", stop_at=4, progress=False)
    split = train_dit(_config(bert_dir, steps=8), _buckets(), tmp_path / "split", progress=False)
    assert split.step == 8 and len(split.losses) == 4 and split.losses == whole.losses[4:]
    for key, value in whole.ema.shadow.items():
        torch.testing.assert_close(split.ema.shadow[key], value, rtol=0, atol=0)

    shutil.copytree(bert_dir, tmp_path / "copy")
    with pytest.raises(ValueError, match="another model config"):
        train_dit(_config(tmp_path / "copy", steps=10), _buckets(), tmp_path / "split", progress=False)
    with pytest.raises(ValueError, match=f"hidden size {HIDDEN}"):
        train_dit(_config(bert_dir, steps=1, model=DiTConfig(in_channels=4, text_dim=32)), _buckets(), tmp_path / "x")


def test_the_exported_pipeline_holds_the_encoder_and_generates(bert_dir, tmp_path):
    from kinetoscope.vae.config import tiny
    from kinetoscope.vae.model import CausalVideoVAE

    torch.set_num_threads(1)
    trained = ema_denoiser(train_dit(_config(bert_dir, steps=2), _buckets(), tmp_path / "run", progress=False))
    torch.manual_seed(0)
    pipe = KinetoscopePipeline(
        CausalVideoVAE(tiny()), trained.transformer, trained.text_encoder, SamplingDefaults(num_inference_steps=2)
    )
    pipe.save_pretrained(tmp_path / "model")
    index = json.loads((tmp_path / "model" / "model_index.json").read_text())
    assert index["text_encoder_class"] == "HFTextEncoder"
    assert (tmp_path / "model" / "text_encoder" / "tokenizer.json").is_file()

    loaded = KinetoscopePipeline.from_pretrained(tmp_path / "model")
    assert isinstance(loaded.text_encoder, HFTextEncoder)
    kwargs = {"upsample_prompt": False, "seed": 1, "height": 32, "width": 32}
    image = loaded("a red ball", num_frames=1, **kwargs).frames[0]
    video = loaded("a red ball", num_frames=5, **kwargs).frames[0]
    assert image.shape == (1, 32, 32, 3) and video.shape == (5, 32, 32, 3)
    assert np.array_equal(video, pipe("a red ball", num_frames=5, **kwargs).frames[0])


def test_a_model_index_without_the_encoder_class_loads_the_word_encoder(tiny_model_dir, tmp_path):
    shutil.copytree(tiny_model_dir, tmp_path / "old")
    index = json.loads((tmp_path / "old" / "model_index.json").read_text())
    assert index.pop("text_encoder_class") == "WordTextEncoder"
    (tmp_path / "old" / "model_index.json").write_text(json.dumps(index))
    assert isinstance(KinetoscopePipeline.from_pretrained(tmp_path / "old").text_encoder, WordTextEncoder)


def test_a_folder_without_a_tokenizer_is_refused(bert_dir, tmp_path):
    for name in ("config.json", "model.safetensors"):
        shutil.copy(bert_dir / name, tmp_path / name)
    with pytest.raises(KinetoscopeError, match="no tokenizer"):
        HFTextEncoder.from_pretrained(tmp_path)


def test_cli_refuses_a_bad_text_encoder_folder_in_one_line(run_cli, tmp_path):
    result = run_cli("train", "dit", "--text-encoder", tmp_path, "--run-dir", tmp_path / "run")
    assert result.returncode == 2
    message = f"kinetoscope: error: --text-encoder {tmp_path}: not a transformers model folder (no config.json)"
    assert result.stderr.splitlines() == [message]
    assert not (tmp_path / "run").exists()
