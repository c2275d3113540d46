"""Image-to-video, extension (forward, backward, long), connecting and editing on tiny random parts:
frame counts and sizes, given frames back exactly, determinism, and bad input named."""

from __future__ import annotations

import numpy as np
import pytest

from kinetoscope.evaluation.conditioning import psnr
from kinetoscope.pipelines import (
    KinetoscopeConnectPipeline,
    KinetoscopeExtendPipeline,
    KinetoscopeImageToVideoPipeline,
    KinetoscopeVideoToVideoPipeline,
)
from kinetoscope.shapes.render import render_clip
from kinetoscope.shapes.spec import ObjectSpec, SceneSpec


@pytest.mark.parametrize("image_frame, position", [(0, 0), (-1, 15), (6, 6)])
def test_image_to_video_holds_the_image_at_its_frame(tiny_pipeline, rendered_clip, image_frame, position):
    image = rendered_clip.frames[3]
    out = KinetoscopeImageToVideoPipeline(tiny_pipeline)("a ball", image=image, image_frame=image_frame, seed=1)
    video = out.frames[0]
    assert video.shape == (16, 64, 64, 3) and video.dtype == np.uint8
    assert np.array_equal(video[position], image)
    assert out.given[0].nonzero()[0].tolist() == [position]
    assert not np.array_equal(video[position - 1], image)


def test_image_to_video_grounds_the_prompt_and_repeats_per_seed(tiny_pipeline, rendered_clip):
    pipe = KinetoscopeImageToVideoPipeline(tiny_pipeline)
    a = pipe("a ball", image=rendered_clip.frames[0], num_frames=9, seed=2)
    b = pipe("a ball", image=rendered_clip.frames[0], num_frames=9, seed=2)
    assert np.array_equal(a.frames[0], b.frames[0]) and a.frames[0].shape[0] == 9
    # The clip shows a large red circle and a small blue square on black: the caption keeps them.
    caption = a.prompts[0]
    assert "red circle" in caption and "blue square" in caption and caption.endswith("on a black background.")
    assert pipe("a ball", image=rendered_clip.frames[0], upsample_prompt=False).prompts == ["a ball"]


def test_image_to_video_refuses_bad_input(tiny_pipeline, rendered_clip, rendered_wide_clip):
    pipe = KinetoscopeImageToVideoPipeline(tiny_pipeline)
    with pytest.raises(ValueError, match="image is 112x64"):
        pipe("a ball", image=rendered_wide_clip.frames[0], width=64)
    with pytest.raises(ValueError, match="image_frame"):
        pipe("a ball", image=rendered_clip.frames[0], image_frame=16)
    with pytest.raises(ValueError, match="num_frames"):
        pipe("a ball", image=rendered_clip.frames[0], num_frames=0)
    with pytest.raises(ValueError, match="one image"):
        pipe("a ball", image=rendered_clip.frames[:2])
    with pytest.raises(ValueError, match="uint8"):
        pipe("a ball", image=rendered_clip.frames[0].astype(np.float32))


@pytest.mark.parametrize("backward", [False, True])
@pytest.mark.parametrize("new", [1, 7, 30])
def test_extend_keeps_the_video_and_adds_the_new_frames(tiny_pipeline, rendered_clip, backward, new):
    video = rendered_clip.frames[:10]
    out = KinetoscopeExtendPipeline(tiny_pipeline)("a ball", video=video, num_frames=new, backward=backward)
    frames, given = out.frames[0], out.given[0]
    assert frames.shape == (10 + new, 64, 64, 3)
    kept = frames[new:] if backward else frames[:10]
    assert np.array_equal(kept, video) and given.sum() == 10 and given[new if backward else 0]


def test_given_frame_tasks_use_contrastive_guidance_on_their_upsampled_caption(tiny_pipeline, rendered_clip, monkeypatch):
    """The given-frame pipelines upsample and ground the prompt themselves and hand the model a
    canonical caption, which the model's call contrasts as it would its own upsampled prompt."""
    from kinetoscope.pipelines.text_to_video import KinetoscopePipeline

    seen: list = []
    original = KinetoscopePipeline.prepare_contrasts

    def recording(self, prompts, contrast_prompt):
        contrasts = original(self, prompts, contrast_prompt)
        seen.append((prompts[0], contrasts))
        return contrasts

    monkeypatch.setattr(KinetoscopePipeline, "prepare_contrasts", recording)
    pipe = KinetoscopeExtendPipeline(tiny_pipeline)
    video = rendered_clip.frames[:8]
    on = pipe("a red ball moving left", video=video, num_frames=8, seed=1, contrast_scale=3.0, contrast_interval=(0.0, 1.0))
    off = pipe("a red ball moving left", video=video, num_frames=8, seed=1, contrast_scale=0.0)
    # Every window's caption has a contrast: the red circle moving the other way.
    assert seen and all(c is not None and c[0] != p and "red circle moves" in c[0] for p, c in seen)
    assert not np.array_equal(on.frames[0][8:], off.frames[0][8:])
    assert np.array_equal(on.frames[0][:8], video)


def test_a_long_video_grows_from_text_in_windows(tiny_pipeline):
    out = KinetoscopeExtendPipeline(tiny_pipeline)("a red ball moving left", num_frames=64, seed=3)
    frames = out.frames[0]
    assert frames.shape == (64, 64, 64, 3) and not out.given[0].any()
    # The first window is plain text-to-video with the same noise.
    first = tiny_pipeline(out.prompts[0], num_frames=16, seed=3, upsample_prompt=False).frames[0]
    assert np.array_equal(frames[:16], first)


def test_extend_refuses_bad_input(tiny_pipeline, rendered_clip, rendered_wide_clip):
    pipe = KinetoscopeExtendPipeline(tiny_pipeline)
    with pytest.raises(ValueError, match="num_frames"):
        pipe("a ball", video=rendered_clip.frames, num_frames=0)
    with pytest.raises(ValueError, match="no frames"):
        pipe("a ball", video=rendered_clip.frames[:0], num_frames=4)
    with pytest.raises(ValueError, match="video is 112x64"):
        pipe("a ball", video=rendered_wide_clip.frames, num_frames=4, width=64)
    with pytest.raises(ValueError, match="context_frames"):
        pipe("a ball", video=rendered_clip.frames, num_frames=4, context_frames=16)


@pytest.mark.parametrize("new", [3, 8, 20])
def test_connect_keeps_both_videos_around_the_new_frames(tiny_pipeline, rendered_clip, new):
    a, b = rendered_clip.frames[:8], rendered_clip.frames[8:]
    out = KinetoscopeConnectPipeline(tiny_pipeline)("a ball", video=a, last_video=b, num_frames=new)
    frames, given = out.frames[0], out.given[0]
    assert frames.shape == (16 + new, 64, 64, 3)
    assert np.array_equal(frames[:8], a) and np.array_equal(frames[8 + new :], b)
    assert given.tolist() == [True] * 8 + [False] * new + [True] * 8


def test_connect_refuses_videos_of_two_sizes(tiny_pipeline, rendered_clip, rendered_wide_clip):
    with pytest.raises(ValueError, match="last_video is 112x64"):
        KinetoscopeConnectPipeline(tiny_pipeline)("a", video=rendered_clip.frames, last_video=rendered_wide_clip.frames)


def test_edit_keeps_count_and_size_and_strength_sets_how_much_changes(tiny_pipeline, rendered_wide_clip):
    pipe = KinetoscopeVideoToVideoPipeline(tiny_pipeline)
    video = rendered_wide_clip.frames[:11]
    reconstruction = tiny_pipeline.decode(tiny_pipeline.encode(video), 11, 64, 112)
    reconstruction = (reconstruction[0].permute(1, 2, 3, 0) * 255).round().byte().numpy()
    light = pipe("a blue triangle", video=video, strength=0.02).frames[0]
    heavy = pipe("a blue triangle", video=video, strength=1.0).frames[0]
    assert light.shape == heavy.shape == (11, 64, 112, 3)
    assert psnr(light, reconstruction) > psnr(heavy, reconstruction) + 10
    for bad in (0.0, -0.5, 1.01):
        with pytest.raises(ValueError, match="strength"):
            pipe("a blue triangle", video=video, strength=bad)


def test_extension_windows_are_captioned_with_the_motion_they_continue(tiny_pipeline, monkeypatch):
    scene = SceneSpec("black", (ObjectSpec("yellow", "square", "small", "right", "quickly"),))
    clip = render_clip(scene, num_frames=32, seed=0)  # bounces off the right wall around frame 3
    captions = []
    original = KinetoscopeExtendPipeline.sample_window

    def spy(self, prompt, *args, **kwargs):
        captions.append(prompt)
        return original(self, prompt, *args, **kwargs)

    monkeypatch.setattr(KinetoscopeExtendPipeline, "sample_window", spy)
    out = KinetoscopeExtendPipeline(tiny_pipeline)("a yellow box", video=clip.frames[:16], num_frames=4)
    assert out.prompts == [clip.caption]  # grounded on the video: it starts moving right
    assert captions == [clip.caption.replace("to the right", "to the left")]  # the window starts moving left
    captions.clear()
    extend = KinetoscopeExtendPipeline(tiny_pipeline)
    out = extend(clip.caption, video=clip.frames[16:], num_frames=4, backward=True)
    # One backward window, reaching the first frame: it starts where the prompt does (the ball
    # moves right, then bounces into the video moving left).
    assert out.prompts == [clip.caption] and captions == [clip.caption]
    captions.clear()
    extend(clip.caption, video=clip.frames[8:], num_frames=16, backward=True)
    # Two: the first continues its context (the real frames, moving left), the last reads the prompt.
    assert captions == [clip.caption.replace("to the right", "to the left"), clip.caption]


def test_pipeline_encode_and_decode_keep_no_autograd_graph(tiny_pipeline, rendered_clip):
    # Called outside the pipeline's own no_grad (scripts, evaluation loops), a graph would hold
    # every VAE activation of every encoded clip: a 3,200-clip loop grew past 24 GB.
    latents = tiny_pipeline.encode(rendered_clip.frames[:5])
    assert not latents.requires_grad and latents.grad_fn is None
    pixels = tiny_pipeline.decode(latents, 5, 64, 64)
    assert not pixels.requires_grad and pixels.shape[2] == 5
