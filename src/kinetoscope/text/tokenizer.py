"""A word-level tokenizer: lower-cased words and punctuation looked up in a fixed vocabulary.

The Shapes World's language is a few hundred words, all known in advance (the prompt parser's
tables), so a subword tokenizer would only add length. Out-of-vocabulary words become ``<unk>``
rather than vanishing, so a prompt's unknown words still change the encoding a little.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

PAD, UNK, BOS = "<pad>", "<unk>", "<bos>"
SPECIALS = (PAD, UNK, BOS)
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def split_words(text: str) -> list[str]:
    """``"A red ball, moving up-left."`` -> ``["a", "red", "ball", ",", "moving", "up", "-", "left", "."]``."""
    return _WORD.findall(text.lower())


class WordTokenizer:
    """Maps text to ids ``[<bos>, w1, w2, ...]``; the empty prompt is ``[<bos>]`` alone.

    ``<bos>`` gives every prompt, the empty one (the unconditional branch of classifier-free
    guidance) included, at least one token to attend to.
    """

    def __init__(self, vocab: Sequence[str], max_length: int = 64) -> None:
        if tuple(vocab[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"vocab must start with {SPECIALS}, got {tuple(vocab[:3])}")
        if len(set(vocab)) != len(vocab):
            raise ValueError("vocab has repeated entries")
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}")
        self.vocab = tuple(vocab)
        self.max_length = max_length
        self._ids = {word: i for i, word in enumerate(self.vocab)}

    @classmethod
    def from_words(cls, words: Iterable[str], max_length: int = 64) -> WordTokenizer:
        """A vocabulary of the specials plus every word of ``words`` (split as prompts are), sorted."""
        found = {w for text in words for w in split_words(text)}
        return cls((*SPECIALS, *sorted(found - set(SPECIALS))), max_length)

    def __len__(self) -> int:
        return len(self.vocab)

    def ids(self, text: str) -> list[int]:
        """Token ids of one prompt, ``<bos>`` first, cut at ``max_length``."""
        unk = self._ids[UNK]
        ids = [self._ids[BOS], *(self._ids.get(w, unk) for w in split_words(text))]
        return ids[: self.max_length]

    def unknown(self, text: str) -> list[str]:
        """The words of ``text`` outside the vocabulary, in order."""
        return [w for w in split_words(text) if w not in self._ids]

    def __call__(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Ids ``"b l"`` (padded with ``<pad>``) and mask ``"b l"`` (True for real tokens)."""
        rows = [self.ids(p) for p in prompts]
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), self._ids[PAD], dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.bool)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = True
        return ids, mask
