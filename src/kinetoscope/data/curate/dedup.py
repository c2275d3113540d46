"""Near-duplicate clips: perceptual hashes (pHash) of three frames per clip, compared table-wide.

A pHash is the sign pattern of the 8x8 lowest DCT frequencies of a 32x32 grey thumbnail
against their median: re-encoding, rescaling or a small crop changes a few of its 64 bits,
different pictures about half. A clip's hash is that of its frames at 1/4, 1/2 and 3/4 of its
length (48 hex digits); two clips match when all three pairs are within ``max_distance`` bits.
Matching is table-wide (across sources and shards), so it runs when a table is written.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kinetoscope.data.curate.probe import Frame

_BITS = 1 << np.arange(64, dtype=np.uint64)


def phash(gray: np.ndarray) -> int:
    """64-bit perceptual hash of a grey image "h w" uint8."""
    import cv2

    thumb = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(thumb)[:8, :8].reshape(-1)
    return int((_BITS[low > np.median(low)]).sum())


class HashMeter:
    """Analyser keeping every frame's pHash."""

    stage = "dedup"

    def __init__(self) -> None:
        self.hashes: list[int] = []

    def add(self, frame: Frame) -> None:
        self.hashes.append(phash(frame.gray))


def clip_hash(hashes: Sequence[int], start: int, end: int) -> str:
    """The clip's three frame hashes as 48 hex digits."""
    picks = (start + (end - start) // 4, start + (end - start) // 2, start + 3 * (end - start) // 4)
    return "".join(f"{hashes[min(i, end - 1)]:016x}" for i in picks)


def _split(code: str) -> tuple[int, int, int]:
    return int(code[:16], 16), int(code[16:32], 16), int(code[32:48], 16)


def find_duplicates(codes: Sequence[str], max_distance: int) -> list[int | None]:
    """For each clip, the index of an earlier kept clip it duplicates, or None.

    Greedy in table order: a clip is compared only with clips that are not duplicates
    themselves, so every answer points at a kept clip. Candidates come from a band index on
    the middle hash: with ``max_distance + 1`` bands, two hashes within ``max_distance`` bits
    agree exactly on at least one band (pigeonhole), so no pair is compared needlessly.
    """
    bands = max_distance + 1
    width = 64 // bands
    masks = [((1 << width) - 1) << (b * width) for b in range(bands - 1)]
    masks.append(((1 << 64) - 1) ^ sum(masks))  # the last band takes the leftover bits
    index: list[dict[int, list[int]]] = [{} for _ in range(bands)]
    kept: list[tuple[int, int, int] | None] = []
    answers: list[int | None] = []
    for i, code in enumerate(codes):
        hashes = _split(code) if len(code) == 48 else None
        match = None
        if hashes is not None:
            candidates = sorted({j for b, mask in enumerate(masks) for j in index[b].get(hashes[1] & mask, ())})
            for j in candidates:
                other = kept[j]
                if other is not None and all((a ^ c).bit_count() <= max_distance for a, c in zip(hashes, other)):
                    match = j
                    break
        answers.append(match)
        kept.append(hashes if match is None else None)
        if hashes is not None and match is None:
            for b, mask in enumerate(masks):
                index[b].setdefault(hashes[1] & mask, []).append(i)
    return answers
