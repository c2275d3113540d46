"""Given pixel frames on the latent grid: which latent frames they fill, what to hold, and the output.

A causal VAE with temporal compression T groups a clip's frames into latent frames: frame 0
alone, then T at a time (latent frame j >= 1 holds frames ``T(j-1)+1 .. Tj``; a last group the
clip does not fill is padded by repeating its last frame). Given frames (an image, the video to
extend, the two ends to connect) are laid on the output's frames, and each latent frame is

* **given** when every frame of its group is given: encoded and held clean (t = 0) throughout,
  exactly as the model was trained (:mod:`kinetoscope.training.frame_masks`);
* **partly given** when some are: the group's other frames are filled with the nearest given
  frame (a still), encoded, held until ``t = partial_strength`` and then noised to it and
  sampled (Open-Sora 1.2's edit ratio), so the model can put back the motion the still lacks
  while keeping where things are;
* **free** otherwise: sampled from noise.

The whole canvas (given frames in place, every other frame filled with its nearest given frame)
is encoded in one pass. A causal encoder gives a given prefix exactly the latents it has alone;
given frames after unknown ones see a still lead-in instead of nothing. Callers align given
frames to groups where they can (a prefix of ``1 + T k`` frames, a suffix starting at frame
``1 + T k``): then no latent frame is partly given.

The output holds the given frames exactly as they were, pasted over the decoded ones (see
:func:`paste_given`): the VAE is lossy, and a user extending a video expects it back untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from kinetoscope.vae.framing import latent_frames


def frame_groups(num_frames: int, temporal_compression: int) -> list[range]:
    """The pixel frames of each latent frame of a ``num_frames`` clip (the last group cut at the clip's end)."""
    t = temporal_compression
    groups = [range(0, 1)]
    for j in range(1, latent_frames(num_frames, t)):
        groups.append(range(t * (j - 1) + 1, min(t * j + 1, num_frames)))
    return groups


def aligned_prefix(available: int, temporal_compression: int) -> int:
    """The most frames, at most ``available``, that fill whole latent frames from the start: ``1 + T k``."""
    if available < 1:
        raise ValueError(f"need at least 1 frame, got {available}")
    return 1 + temporal_compression * ((available - 1) // temporal_compression)


@dataclass(frozen=True)
class GivenLayout:
    """Which latent frames of a ``num_frames`` clip the given ``positions`` fill.

    ``given`` and ``partial`` are bool ``"t"`` over latent frames (see the module docstring).
    """

    num_frames: int
    positions: tuple[int, ...]
    given: np.ndarray
    partial: np.ndarray

    @property
    def free(self) -> np.ndarray:
        return ~(self.given | self.partial)


def layout_given(num_frames: int, positions: Sequence[int], temporal_compression: int) -> GivenLayout:
    """Sort given frame ``positions`` (distinct, in ``0 .. num_frames - 1``) onto the latent grid."""
    positions = tuple(int(p) for p in positions)
    if len(set(positions)) != len(positions):
        raise ValueError(f"given frame positions repeat: {positions}")
    if any(not 0 <= p < num_frames for p in positions):
        raise ValueError(f"given frame positions must be in 0..{num_frames - 1}, got {positions}")
    known = np.zeros(num_frames, dtype=bool)
    known[list(positions)] = True
    groups = frame_groups(num_frames, temporal_compression)
    given = np.array([known[g].all() for g in groups])
    partial = np.array([known[g].any() for g in groups]) & ~given
    return GivenLayout(num_frames, positions, given, partial)


def fill_canvas(frames: np.ndarray, positions: Sequence[int], num_frames: int) -> np.ndarray:
    """uint8 ``"t h w c"`` of ``num_frames``: ``frames`` ``"n h w c"`` at ``positions``, every
    other frame a copy of the nearest given one (the earlier one on a tie)."""
    positions = np.asarray(positions, dtype=np.int64)
    distance = np.abs(np.arange(num_frames)[:, None] - positions[None, :])  # t n
    # argmin keeps the first minimum; ordering by position makes that the earlier frame.
    order = np.argsort(positions, kind="stable")
    nearest = order[np.argmin(distance[:, order], axis=1)]
    return np.ascontiguousarray(frames[nearest])


@dataclass
class GivenLatents:
    """What :meth:`~kinetoscope.pipelines.KinetoscopePipeline.__call__` takes for given frames:
    normalised latents ``"1 c t h w"`` and bool masks ``"1 1 t 1 1"`` (None where empty)."""

    latents: torch.Tensor
    given_mask: torch.Tensor | None
    release_mask: torch.Tensor | None


def encode_given(
    encode: Callable[[np.ndarray], torch.Tensor],
    frames: np.ndarray,
    layout: GivenLayout,
) -> GivenLatents:
    """Encode the filled canvas of ``frames`` (uint8 ``"n h w c"``, at ``layout.positions``) with
    ``encode`` (uint8 ``"t h w c"`` -> ``"1 c t h w"``) and mask its given and partly given frames."""
    if len(frames) != len(layout.positions):
        raise ValueError(f"got {len(frames)} frames for {len(layout.positions)} positions")
    latents = encode(fill_canvas(frames, layout.positions, layout.num_frames))
    if latents.shape[2] != len(layout.given):
        raise ValueError(f"the encoder gave {latents.shape[2]} latent frames, the layout has {len(layout.given)}")

    def mask(flags: np.ndarray) -> torch.Tensor | None:
        if not flags.any():
            return None
        return torch.from_numpy(flags).reshape(1, 1, -1, 1, 1).to(latents.device)

    return GivenLatents(latents, mask(layout.given), mask(layout.partial))


def paste_given(video: np.ndarray, frames: np.ndarray, positions: Sequence[int]) -> np.ndarray:
    """``video`` uint8 ``"t h w c"`` with ``frames`` put back at ``positions`` (a new array)."""
    out = np.array(video, copy=True)
    out[list(positions)] = frames
    return out
