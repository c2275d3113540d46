"""Spatial tiling of the VAE: the tile layout and its cross-fade, tiled against whole-frame coding
(exact when a frame fits in a tile, close on the shipped VAE when it does not), tiling with temporal
chunks and streaming, and `reconstruct --tile-size`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kinetoscope.training.losses import psnr_per_clip
from kinetoscope.training.vae import to_model_input
from kinetoscope.vae.causal_conv import CausalCache
from kinetoscope.vae.config import tiny
from kinetoscope.vae.model import CausalVideoVAE
from kinetoscope.vae.tiling import TileGrid, iter_tiled_chunks, ramps, tile_spans


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch):
    """Small tensors: a second thread only waits on its barrier on a shared 2-core machine."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _video(t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, t, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("size", [1, 7, 8, 9, 20, 31, 57, 100])
@pytest.mark.parametrize(("tile", "overlap"), [(8, 0), (8, 2), (8, 4), (12, 3)])
def test_tiles_cover_the_axis_full_size_and_overlapping(size: int, tile: int, overlap: int) -> None:
    spans = tile_spans(size, tile, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == size
    if size <= tile:
        assert spans == [(0, size)]
        return
    assert all(stop - start == tile for start, stop in spans)
    assert all(a[1] - b[0] >= overlap for a, b in zip(spans, spans[1:]))  # each overlaps the one before
    assert all(b[0] > a[0] for a, b in zip(spans, spans[1:]))
    # Where two tiles meet, their weights sum to 1: a linear cross-fade, no dip or bump. (Three can
    # meet when tiles must crowd to cover the axis; TileGrid.run divides by the sum for those.)
    for scale in (1, 4):
        total, cover = torch.zeros(size * scale), torch.zeros(size * scale)
        for (start, stop), weight in zip(spans, ramps(spans, scale)):
            assert weight.min() > 0
            total[start * scale : stop * scale] += weight
            cover[start * scale : stop * scale] += 1
        torch.testing.assert_close(total[cover <= 2], torch.ones_like(total[cover <= 2]))
        assert (cover <= 2).float().mean() > 0.8


def test_bad_tile_layouts_are_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        tile_spans(10, 4, 4)
    vae = CausalVideoVAE(tiny())
    for tile, overlap in ((12, 0), (64, 12), (64, 40), (0, 0), (64, -8)):
        with pytest.raises(ValueError, match="tile_size"):
            vae.enable_tiling(tile, overlap)


def test_a_grid_puts_every_tile_back_where_it_came_from() -> None:
    x = _video(3, 40, 72)
    grid = TileGrid.over(40, 72, 16, 4)
    assert len(grid) == 3 * 6
    seen = []

    def identity(tile: torch.Tensor, index: int) -> torch.Tensor:
        seen.append(index)
        return tile

    torch.testing.assert_close(grid.run(identity, x, 1, 1), x)
    assert seen == list(range(18))
    crowded = TileGrid.over(15, 15, 8, 2)  # three tiles of 8 per 15 positions: some positions in three
    assert crowded.rows == [(0, 8), (4, 12), (7, 15)]
    torch.testing.assert_close(crowded.run(lambda tile, _: tile, x[..., :15, :15], 1, 1), x[..., :15, :15])
    # A map that changes the scale (as the decoder does, 1 latent position to 4 pixels).
    up = grid.run(lambda tile, _: F.interpolate(tile, scale_factor=(1, 4, 4), mode="nearest"), x, 1, 4)
    torch.testing.assert_close(up, F.interpolate(x, scale_factor=(1, 4, 4), mode="nearest"))


def test_frames_within_one_tile_are_coded_exactly_as_without_tiling() -> None:
    torch.manual_seed(0)
    vae = CausalVideoVAE(tiny()).eval()
    x = _video(5, 40, 64)
    with torch.no_grad():
        whole = vae(x, sample_posterior=False).sample
        vae.enable_tiling(64, 16)
        tiled = vae(x, sample_posterior=False).sample
    assert torch.equal(tiled, whole)


def test_tiles_with_temporal_chunks_equal_tiles_alone_and_stream_the_same() -> None:
    torch.manual_seed(0)
    vae = CausalVideoVAE(tiny()).eval()
    x = _video(13, 48, 80)
    vae.enable_tiling(32, 8)
    with torch.no_grad():
        z = vae.encode(x).mode()
        pixels = vae.decode(z, 13, 48, 80)
        vae.enable_chunking(4)
        assert torch.allclose(vae.encode(x).mode(), z, atol=1e-5)
        assert torch.allclose(vae.decode(z, 13, 48, 80), pixels, atol=1e-5)
        streamed = list(vae.iter_decode(z, 13, 48, 80))  # chunk by chunk, each in tiles
    assert len(streamed) == 3 and torch.allclose(torch.cat(streamed, dim=2), pixels, atol=1e-5)
    # The streaming path keeps one causal cache per tile: sharing one would mix the tiles' pasts.
    grid = TileGrid.over(z.shape[-2], z.shape[-1], 4, 1)
    calls: list[CausalCache] = []

    def decoder(tile: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        calls.append(cache)
        return vae.decoder(tile, cache)

    with torch.no_grad():
        list(iter_tiled_chunks(decoder, z, grid, 2, 1, 1, vae.spatial_compression))
    assert len(set(map(id, calls))) == len(grid) and len(calls) == len(grid) * (z.shape[2] - 1)  # chunks of 2, 1, 1 latent frames


def test_the_shipped_vae_in_tiles_matches_whole_frames_on_photos() -> None:
    pytest.importorskip("skimage", reason="scikit-image (the 'train' extra) ships the photos")
    from kinetoscope.data.vae_mix import heldout_clips
    from kinetoscope.training.vae import to_model_input

    vae = CausalVideoVAE.from_pretrained(Path(__file__).parents[1] / "src" / "kinetoscope" / "weights" / "vae")
    x = to_model_input(heldout_clips("photos", 1, num_frames=5, height=128, width=192), torch.device("cpu"))
    with torch.no_grad():
        whole = vae(x, sample_posterior=False).sample
        vae.enable_tiling(64, 16)  # 3 x 4 tiles of 64 x 64 pixels
        tiled = vae(x, sample_posterior=False).sample
    # Measured: 43.6 dB between the two at this size, 55 dB with 128-pixel tiles; the seams cost
    # the reconstruction 0.1 dB.
    assert float(psnr_per_clip(tiled, whole)[0]) > 38
    assert float(psnr_per_clip(tiled, x)[0]) > float(psnr_per_clip(whole, x)[0]) - 0.3


def test_reconstruct_in_tiles_and_its_bad_tile_sizes(run_cli, tmp_path: Path) -> None:
    from kinetoscope.io.video import read_video, write_video

    torch.manual_seed(0)
    model = CausalVideoVAE(tiny()).save_pretrained(tmp_path / "tiny")
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 256, (1, 72, 136, 3), dtype=np.uint8), 9, axis=0)
    video = write_video(tmp_path / "in.mp4", frames, fps=8)
    printed = {}
    for tile in ("0", "32", "64"):
        out = tmp_path / f"out{tile}.mp4"
        result = run_cli("reconstruct", video, "-o", out, "--model", model, "--tile-size", tile)
        assert result.returncode == 0, result.stderr
        printed[tile] = float(re.match(r"PSNR (\d+\.\d+) dB over 9 frames of 136x72", result.stdout).group(1))
        assert read_video(out)[0].shape == (9, 72, 136, 3)
    assert abs(printed["64"] - printed["0"]) < 1.0 and abs(printed["32"] - printed["0"]) < 1.5
    # Past two chunks the command streams its decode chunk by chunk (every tile's cache alive); the PSNR
    # it prints is that of the whole-video decode here, tile by tile, to rounding. The shipped VAE on a
    # moving Shapes World clip, so a chunk measured against the wrong frames would show.
    from kinetoscope.pipelines.text_to_video import default_model_dir
    from kinetoscope.shapes.render import render_clip
    from kinetoscope.shapes.spec import ObjectSpec, SceneSpec

    scene = SceneSpec("black", (ObjectSpec("red", "square", "large", "right", "quickly"),))
    long = write_video(tmp_path / "long.mp4", render_clip(scene, height=64, width=96, num_frames=13, seed=0).frames, fps=8)
    shipped = default_model_dir() / "vae"
    chunked = run_cli("reconstruct", long, "-o", tmp_path / "chunked.mp4", "--model", shipped, "--tile-size", "32",
                      "--chunk-frames", "4", "--no-progress")  # fmt: skip
    assert chunked.returncode == 0 and chunked.stderr == "", chunked.stderr
    assert read_video(tmp_path / "chunked.mp4")[0].shape == (13, 64, 96, 3)
    source, _ = read_video(long)
    vae = CausalVideoVAE.from_pretrained(shipped)
    vae.enable_chunking(4)
    vae.enable_tiling(32, 0)
    with torch.no_grad():
        x = to_model_input(source[None], torch.device("cpu"))
        decoded = vae.decode(vae.encode(x).mode(), *x.shape[2:]).clamp(-1, 1)
    restored = torch.round((decoded + 1) * 127.5)
    expected = float(psnr_per_clip(restored / 127.5 - 1, x)[0])
    assert float(re.match(r"PSNR (\d+\.\d+) dB", chunked.stdout).group(1)) == pytest.approx(expected, abs=0.01)
    for bad in ("12", "-8"):
        result = run_cli("reconstruct", video, "-o", tmp_path / "bad.mp4", "--model", model, "--tile-size", bad)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--tile-size" in result.stderr
        assert not (tmp_path / "bad.mp4").exists()


def test_progress_bars_count_every_chunk_of_every_tile(monkeypatch: pytest.MonkeyPatch) -> None:
    import kinetoscope.vae.model as vae_model

    bars: list[Recorded] = []

    class Recorded:  # what the model asks of tqdm
        def __init__(self, total: int, desc: str, **_) -> None:
            self.total, self.desc, self.n, self.closed_at = total, desc, 0, None
            bars.append(self)

        def update(self, n: int = 1) -> None:
            self.n += n

        def close(self) -> None:
            self.closed_at = self.n

    monkeypatch.setattr(vae_model, "tqdm", Recorded)
    torch.manual_seed(0)
    vae = CausalVideoVAE(tiny()).eval()
    x = _video(9, 48, 80)
    vae.enable_chunking(4)
    vae.enable_tiling(32, 8)  # 2 x 3 tiles of 4 x 4 latent positions, 2 chunks (5 + 4 frames) each
    with torch.no_grad():
        quiet = vae.decode(vae.encode(x).mode(), 9, 48, 80)
        assert bars == []
        loud = vae.decode(vae.encode(x, progress=True).mode(), 9, 48, 80, progress=True)
    assert torch.equal(loud, quiet)
    assert [(b.desc, b.total, b.closed_at) for b in bars] == [("encoding", 12, 12), ("decoding", 12, 12)]
