"""Pipelines: the parts composed into generation (text-to-video and images; given frames)."""

from kinetoscope.pipelines.extend import KinetoscopeConnectPipeline, KinetoscopeExtendPipeline
from kinetoscope.pipelines.given_frames import (
    ConditionedVideoOutput,
    KinetoscopeImageToVideoPipeline,
    KinetoscopeVideoToVideoPipeline,
)
from kinetoscope.pipelines.text_to_video import KinetoscopePipeline, SamplingDefaults, VideoPipelineOutput

__all__ = [
    "ConditionedVideoOutput",
    "KinetoscopeConnectPipeline",
    "KinetoscopeExtendPipeline",
    "KinetoscopeImageToVideoPipeline",
    "KinetoscopePipeline",
    "KinetoscopeVideoToVideoPipeline",
    "SamplingDefaults",
    "VideoPipelineOutput",
]
