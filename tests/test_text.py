"""The word tokenizer and text encoder, and loading transformers encoders from a local folder."""

from __future__ import annotations

import pytest
import torch

from kinetoscope.errors import KinetoscopeError
from kinetoscope.shapes.vocabulary import caption_language
from kinetoscope.text import WordTextEncoder, WordTextEncoderConfig, WordTokenizer
from kinetoscope.text.tokenizer import split_words


def _tokenizer() -> WordTokenizer:
    return WordTokenizer.from_words(caption_language())


def test_split_words_separates_punctuation_and_hyphens():
    assert split_words("A red ball, moving up-left.") == ["a", "red", "ball", ",", "moving", "up", "-", "left", "."]


def test_every_caption_word_is_in_the_vocabulary():
    tok = _tokenizer()
    caption = "A small blue triangle stays still and a large yellow square moves quickly down and to the left on a gray background."
    assert tok.unknown(caption) == []
    assert tok.unknown("a zebra on grey") == ["zebra"]


def test_ids_start_with_bos_and_pad_with_a_mask():
    tok = _tokenizer()
    ids, mask = tok(["", "a red ball", "a zebra"])
    bos, unk, pad = tok.vocab.index("<bos>"), tok.vocab.index("<unk>"), tok.vocab.index("<pad>")
    assert ids[:, 0].tolist() == [bos] * 3
    assert mask.sum(1).tolist() == [1, 4, 3]
    assert ids[0, 1:].tolist() == [pad] * 3
    assert ids[2, 2].item() == unk


def test_long_prompts_are_cut_at_max_length():
    tok = WordTokenizer(_tokenizer().vocab, max_length=5)
    ids, mask = tok(["a red ball and a blue box on white"])
    assert ids.shape == (1, 5) and bool(mask.all())


def test_vocab_must_start_with_the_specials():
    with pytest.raises(ValueError, match="must start with"):
        WordTokenizer(("a", "b"))


def _encoder() -> WordTextEncoder:
    torch.manual_seed(0)
    return WordTextEncoder(WordTextEncoderConfig(vocab=_tokenizer().vocab, width=32, depth=2, heads=2)).eval()


def test_padding_does_not_change_a_prompts_encoding():
    enc = _encoder()
    alone = enc.encode(["a red ball"])
    batched = enc.encode(["a red ball", "a large blue square moves quickly to the left on a white background"])
    n = int(alone.mask.sum())
    torch.testing.assert_close(batched.hidden[0, :n], alone.hidden[0, :n], atol=1e-5, rtol=1e-5)
    assert bool((batched.hidden[0, n:] == 0).all())


def test_different_prompts_encode_differently():
    enc = _encoder()
    out = enc.encode(["a red ball", "a blue ball"])
    assert (out.hidden[0] - out.hidden[1]).abs().max() > 1e-3


def test_a_fresh_encoder_keeps_each_word_distinct_at_its_position():
    # The shipped width: one changed word must move that word's state by about the state's own
    # norm, while the shared words barely move. With GPT-style 0.02 embeddings in this pre-norm
    # stack the changed word moved its state by ~1/10 of that, and a trained DiT ignored
    # direction words entirely.
    torch.manual_seed(0)
    enc = WordTextEncoder(WordTextEncoderConfig(vocab=_tokenizer().vocab)).eval()
    right, left = enc.encode(["a red circle moves to the right", "a red circle moves to the left"]).hidden
    moved = (right - left).norm(dim=-1)                                                            # l
    changed = 7  # <bos> a red circle moves to the [right|left]
    assert moved[changed] > 0.7 * right[changed].norm()
    assert moved[:changed].max() < 0.25 * moved[changed]


def test_save_and_load_round_trip(tmp_path):
    enc = _encoder()
    enc.save_pretrained(tmp_path / "te")
    loaded = WordTextEncoder.from_pretrained(tmp_path / "te")
    assert loaded.config.vocab == enc.config.vocab
    prompts = ["a red ball moving left", ""]
    torch.testing.assert_close(loaded.encode(prompts).hidden, enc.encode(prompts).hidden)


def test_hf_encoder_loads_a_local_t5_folder(tmp_path):
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    from kinetoscope.text import HFTextEncoder

    words = ["<pad>", "</s>", "<unk>", *sorted(set(split_words(" ".join(caption_language()))))]
    model = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    model.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=model, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    config = transformers.T5Config(
        vocab_size=len(words), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, decoder_start_token_id=0
    )
    torch.manual_seed(0)
    transformers.T5EncoderModel(config).save_pretrained(tmp_path / "t5")
    tokenizer.save_pretrained(tmp_path / "t5")

    encoder = HFTextEncoder.from_pretrained(tmp_path / "t5")
    out = encoder.encode(["a red ball", "a large blue square on white"])
    assert encoder.dim == 16
    assert out.hidden.shape[:2] == out.mask.shape and out.hidden.shape[-1] == 16
    assert out.mask.sum(1).tolist() == [3, 6]
    assert (out.hidden[0] - out.hidden[1]).abs().max() > 0


def test_hf_encoder_refuses_a_folder_without_a_model(tmp_path):
    pytest.importorskip("transformers")
    from kinetoscope.text import HFTextEncoder

    with pytest.raises(KinetoscopeError, match="no config.json"):
        HFTextEncoder.from_pretrained(tmp_path)
