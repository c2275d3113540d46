"""Causal 3D convolution, and the cache that lets it run over a clip in temporal chunks.

A causal convolution pads time on the left only, so output frame ``i`` sees input frames ``<= i``
(MAGVIT-v2, CogVideoX, Wan, LTX-Video). The first chunk of a clip is padded with copies of its
first frame rather than zeros: a still image then looks, to every layer, exactly like the start
of a video that holds still, and there is no made-up "before the clip" state for the network to
learn. Later chunks are padded with the last ``k - 1`` input frames of the chunk before, kept in a
:class:`CausalCache`, which makes chunked and whole-clip results equal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

# PyTorch (aten/src/ATen/native/Convolution.cpp, ``use_mkldnn``) sends a CPU conv3d with batch 1
# and ``c * t * h`` at or below this many elements to its reference kernel, which measured 5-15x
# slower than oneDNN here; folding frames into the batch of a conv2d keeps such calls on oneDNN.
_CPU_NATIVE_CONV3D_LIMIT = 20480


class CausalCache:
    """State carried from one temporal chunk of a clip to the next, one entry per layer.

    A layer absent from the cache is seeing the first chunk. Use a fresh cache per clip (and per
    encode or decode pass); the model creates one itself when given none.
    """

    def __init__(self) -> None:
        self._state: dict[nn.Module, torch.Tensor | None] = {}

    def is_first(self, layer: nn.Module) -> bool:
        """True while ``layer`` has not yet run on this clip."""
        return layer not in self._state

    def get(self, layer: nn.Module) -> torch.Tensor | None:
        """What ``layer`` stored after the previous chunk (None on the first chunk)."""
        return self._state.get(layer)

    def put(self, layer: nn.Module, value: torch.Tensor | None) -> None:
        """Store ``value`` for ``layer``'s next chunk, and mark the first chunk as done."""
        self._state[layer] = value


class CausalConv3d(nn.Conv3d):
    """A Conv3d over ``"b c t h w"`` that is causal in ``t`` and "same"-padded with zeros in h, w.

    Weights and state-dict keys are those of ``nn.Conv3d`` with the same kernel; odd spatial
    kernel sizes only, stride 1.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int, int] = 3) -> None:
        kt, kh, kw = (kernel_size,) * 3 if isinstance(kernel_size, int) else kernel_size
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"spatial kernel sizes must be odd, got {(kt, kh, kw)}")
        super().__init__(in_channels, out_channels, (kt, kh, kw), padding=(0, kh // 2, kw // 2))

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        """``"b c t h w" -> "b o t h w"``, the same number of frames out as in."""
        kt = self.kernel_size[0]
        if kt > 1:
            past = cache.get(self)
            if past is None:
                past = x[:, :, :1].expand(-1, -1, kt - 1, -1, -1)
            x = torch.cat([past, x], dim=2)
            # A clone, so the cache holds k - 1 frames rather than keeping the whole chunk alive.
            cache.put(self, x[:, :, -(kt - 1) :].clone())
        if _prefer_frame_conv(x):
            return self._frame_conv(x)
        return F.conv3d(x, self.weight, self.bias, padding=self.padding)

    def _frame_conv(self, x: torch.Tensor) -> torch.Tensor:
        """The same convolution as conv2d over frames, with the temporal taps stacked on channels."""
        kt = self.kernel_size[0]
        frames = x.shape[2] - kt + 1
        taps = torch.cat([x[:, :, i : i + frames] for i in range(kt)], dim=1)
        taps = rearrange(taps, "b c t h w -> (b t) c h w")
        weight = rearrange(self.weight, "o c k h w -> o (k c) h w")
        y = F.conv2d(taps, weight, self.bias, padding=self.padding[1:])
        return rearrange(y, "(b t) o h w -> b o t h w", t=frames)


def _prefer_frame_conv(x: torch.Tensor) -> bool:
    b, c, t, h, _ = x.shape
    return x.device.type == "cpu" and b == 1 and c * t * h <= _CPU_NATIVE_CONV3D_LIMIT
