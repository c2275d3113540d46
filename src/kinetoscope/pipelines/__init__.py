"""Pipelines: the parts composed into generation (text-to-video and images; given frames)."""

from kinetoscope.pipelines.text_to_video import KinetoscopePipeline, SamplingDefaults, VideoPipelineOutput

__all__ = ["KinetoscopePipeline", "SamplingDefaults", "VideoPipelineOutput"]
