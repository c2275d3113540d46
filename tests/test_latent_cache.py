"""Latent shards: round trip, refusal of another VAE's cache, and the Shapes World cache builder."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from kinetoscope.data.latent_cache import LatentBucket, hold_out_sources, load_buckets, read_shard, vae_fingerprint, write_shard
from kinetoscope.data.shapes_latents import (
    LatentBucketSpec,
    ShapesLatentsConfig,
    build_shapes_latents,
    is_held_out,
    load_shapes_latents,
    validation_config,
)
from kinetoscope.errors import KinetoscopeError
from kinetoscope.shapes.spec import ObjectSpec, SceneSpec
from kinetoscope.vae.config import tiny
from kinetoscope.vae.model import CausalVideoVAE


@pytest.fixture(scope="module")
def vae() -> CausalVideoVAE:
    torch.manual_seed(0)
    return CausalVideoVAE(tiny()).eval()


def test_shard_round_trip(tmp_path):
    latents = torch.randn(3, 4, 2, 8, 8)
    records = [{"text": f"clip {i}", "seed": i} for i in range(3)]
    write_shard(tmp_path / "a.safetensors", latents, records, "abc")
    shard = read_shard(tmp_path / "a.safetensors")
    torch.testing.assert_close(shard.latents, latents, atol=2e-3, rtol=1e-3)  # stored as float16
    assert shard.records == records and shard.vae_id == "abc"


def test_damaged_shard_is_named(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(KinetoscopeError, match="bad.safetensors"):
        read_shard(tmp_path / "bad.safetensors")


def test_buckets_group_by_shape_and_refuse_another_vae(tmp_path):
    write_shard(tmp_path / "a.safetensors", torch.zeros(2, 4, 2, 8, 8), [{"text": "a"}] * 2, "v1")
    write_shard(tmp_path / "b.safetensors", torch.zeros(5, 4, 1, 8, 8), [{"text": "b"}] * 5, "v1")
    buckets = load_buckets(tmp_path, "v1")
    assert [b.shape for b in buckets] == [(4, 1, 8, 8), (4, 2, 8, 8)]
    with pytest.raises(KinetoscopeError, match="another VAE"):
        load_buckets(tmp_path, "v2")


def test_fingerprint_changes_with_the_weights(vae):
    other = CausalVideoVAE(tiny())
    assert vae_fingerprint(vae) == vae_fingerprint(vae)
    assert vae_fingerprint(vae) != vae_fingerprint(other)


def test_held_out_matches_every_attribute_of_a_combination():
    combo = ({"color": "purple", "shape": "triangle"},)
    purple_triangle = ObjectSpec("purple", "triangle", "small", "left", "slowly")
    purple_circle = ObjectSpec("purple", "circle", "small", "left", "slowly")
    assert is_held_out(SceneSpec("black", (purple_circle, ObjectSpec("red", "triangle", "small", "up", "slowly"))), combo) is False
    assert is_held_out(SceneSpec("black", (ObjectSpec("red", "circle", "large", "up", "slowly"), purple_triangle)), combo)


def test_build_writes_every_bucket_without_held_out_scenes_and_resumes(tmp_path, vae):
    config = ShapesLatentsConfig(
        buckets=(LatentBucketSpec(8, 64, 64, 30, 0.7), LatentBucketSpec(1, 64, 112, 10, 0.3)),
        held_out=({"color": "red"},),
        shard_size=16,
    )
    build_shapes_latents(config, vae, tmp_path, progress=False)
    buckets = load_shapes_latents(config, tmp_path, vae_fingerprint(vae))
    assert [b.shape for b in buckets] == [(4, 3, 8, 8), (4, 1, 8, 14)]
    assert [len(b.records) for b in buckets] == [30, 10]
    scenes = [SceneSpec.from_dict(r["scene"]) for b in buckets for r in b.records]
    assert not any(o.color == "red" for s in scenes for o in s.objects)
    assert {len(s.objects) for s in scenes} == {1, 2}
    # A rebuild keeps every shard, and a missing shard is rebuilt identically.
    kept = (tmp_path / "b0_00000.safetensors").stat().st_mtime_ns
    first = read_shard(tmp_path / "b0_00001.safetensors")
    (tmp_path / "b0_00001.safetensors").unlink()
    build_shapes_latents(config, vae, tmp_path, progress=False)
    again = read_shard(tmp_path / "b0_00001.safetensors")
    assert torch.equal(again.latents, first.latents) and again.records == first.records
    assert (tmp_path / "b0_00000.safetensors").stat().st_mtime_ns == kept
    # The latents are the VAE's normalised posterior mode of the recorded clip.
    from kinetoscope.shapes.render import render_clip

    record = buckets[0].records[3]
    clip = render_clip(SceneSpec.from_dict(record["scene"]), num_frames=8, seed=record["seed"])
    assert clip.caption == record["text"]
    x = torch.from_numpy(clip.frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    with torch.no_grad():
        expected = vae.normalize(vae.encode(x).mode())[0]
    torch.testing.assert_close(buckets[0].latents[3], expected, atol=2e-2, rtol=1e-2)
    assert json.dumps(record)  # records stay JSON


def test_straight_clips_go_their_caption_direction_before_any_bounce(tmp_path, vae):
    from kinetoscope.shapes.render import first_bounce, render_clip

    straight = ShapesLatentsConfig(buckets=(LatentBucketSpec(16, 64, 64, 24, 1.0),), min_straight_frames=12, shard_size=24)
    uniform = ShapesLatentsConfig(buckets=(LatentBucketSpec(16, 64, 64, 24, 1.0),), shard_size=24)
    runs = {}
    for name, config in (("straight", straight), ("uniform", uniform)):
        build_shapes_latents(config, vae, tmp_path / name, progress=False)
        records = load_shapes_latents(config, tmp_path / name)[0].records
        runs[name] = [
            int(first_bounce(render_clip(SceneSpec.from_dict(r["scene"]), seed=r["seed"]).boxes).min()) for r in records
        ]
    assert min(runs["straight"]) >= 12
    assert min(runs["uniform"]) < 12  # the spec's starts bounce early often (a quick object: half by frame 8)
    # Only start positions are redrawn: the same scenes, so captions and attributes keep their mix.
    scenes = [load_shapes_latents(c, tmp_path / n)[0].records for n, c in (("straight", straight), ("uniform", uniform))]
    assert [r["scene"] for r in scenes[0]] == [r["scene"] for r in scenes[1]]


def test_straight_settings_are_checked():
    with pytest.raises(ValueError, match="min_straight_frames"):
        ShapesLatentsConfig(min_straight_frames=-1)
    with pytest.raises(ValueError, match="straight_fraction"):
        ShapesLatentsConfig(straight_fraction=1.5)


def test_a_cache_folder_refuses_clips_of_another_config_but_takes_other_weights(tmp_path, vae):
    config = ShapesLatentsConfig(buckets=(LatentBucketSpec(8, 64, 64, 4, 1.0),), shard_size=4)
    build_shapes_latents(config, vae, tmp_path, progress=False)
    build_shapes_latents(replace(config, buckets=(LatentBucketSpec(8, 64, 64, 4, 0.5),)), vae, tmp_path, progress=False)
    for other, named in ((replace(config, seed=1), "seed"), (replace(config, min_straight_frames=8), "min_straight_frames")):
        with pytest.raises(KinetoscopeError, match=f"differs in {named}"):
            build_shapes_latents(other, vae, tmp_path, progress=False)
    assert len(load_shapes_latents(config, tmp_path)[0].records) == 4


def test_other_data_seeds_and_the_validation_clips_are_other_clips(tmp_path, vae):
    config = ShapesLatentsConfig(buckets=(LatentBucketSpec(8, 64, 64, 6, 0.9), LatentBucketSpec(1, 64, 64, 4, 0.1)), shard_size=8)
    reseeded = replace(config, seed=1)
    validation = validation_config(config, 5)
    assert validation.buckets == (LatentBucketSpec(8, 64, 64, 5, 1.0),)
    assert validation_config(reseeded, 5) == validation  # one validation set, whatever the training seed
    seeds = {}
    for name, c in (("config", config), ("reseeded", reseeded), ("validation", validation)):
        build_shapes_latents(c, vae, tmp_path / name, progress=False)
        seeds[name] = {r["seed"] for b in load_shapes_latents(c, tmp_path / name) for r in b.records}
    assert len(seeds["validation"]) == 5
    assert not seeds["config"] & seeds["reseeded"] and not seeds["validation"] & (seeds["config"] | seeds["reseeded"])
    with pytest.raises(ValueError, match="at least 1"):
        validation_config(config, 0)


def test_validation_holds_out_whole_sources_the_same_way_every_time():
    records = [{"text": f"clip {i}", "source": f"video{i // 3}.mp4"} for i in range(60)]  # 20 sources of 3 clips
    records += [{"text": "loose"} for _ in range(10)]  # no source: each clip its own
    bucket = LatentBucket(torch.arange(70.0).reshape(70, 1, 1, 1, 1), records)
    kept, held = hold_out_sources(bucket, count=5)
    assert 5 <= held.latents.shape[0] <= 7  # whole sources, at most 10% of 70
    assert kept.latents.shape[0] + held.latents.shape[0] == 70
    assert set(kept.latents.flatten().tolist()).isdisjoint(held.latents.flatten().tolist())
    held_sources = {r.get("source") for r in held.records} - {None}
    assert held_sources and not held_sources & {r.get("source") for r in kept.records}
    assert hold_out_sources(bucket, count=5)[1].records == held.records  # a resume holds out the same
    assert hold_out_sources(bucket, count=5, seed=1)[1].records != held.records
    assert hold_out_sources(bucket, count=500)[1].latents.shape[0] <= 7  # never more than a tenth
    one_source = LatentBucket(torch.zeros(30, 1, 1, 1, 1), [{"text": "a", "source": "one.mp4"}] * 30)
    kept, held = hold_out_sources(one_source, count=8)
    assert kept is one_source and held is None  # the only source would take it all
