"""What a curation run does, as one dataclass whose defaults suit a CPU."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class CurateConfig:
    """Options of ``kinetoscope data curate``; a source is redone when any of them changes.

    Durations are in seconds and motion in percent of the frame's short side per second, so
    one setting means the same thing at any frame rate and resolution.
    """

    # Open-Sora cuts 2-15 s clips; shorter defaults suit the small CPU models trained here.
    min_seconds: float = 1.0
    max_seconds: float = 10.0
    # PySceneDetect ContentDetector's own defaults, except the minimum scene length, which it
    # counts in frames (15) and we in seconds so that 8 fps and 60 fps files behave alike.
    scene_threshold: float = 27.0
    min_scene_seconds: float = 0.5
    # Short side of the frames the analysers see: scene cuts, flow, sharpness and hashes
    # need shape and colour, not detail; 144p keeps a 1080p file's pass cheap.
    analysis_size: int = 144
    # Clips are written at the source's size (0) or scaled so their short side is this.
    short_side: int = 0
    crf: int = 18
    # Mean flow below static_motion is a still shot; above chaotic_motion the flow is noise,
    # shake or flashes (3 short sides a second is faster than any usable camera move).
    static_motion: float = 1.0
    chaotic_motion: float = 300.0
    # Largest Hamming distance (of 64 bits) at which two clips' perceptual hashes match.
    dedup_distance: int = 4
    sidecars: bool = True
    captioner: str | None = None
    caption_prompt: str | None = None
    aesthetic_model: str | None = None
    text_model: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.min_seconds <= self.max_seconds or self.max_seconds <= 0:
            raise ValueError(
                f"need 0 <= min_seconds <= max_seconds and max_seconds > 0, got {self.min_seconds}, {self.max_seconds}"
            )
        if self.scene_threshold <= 0 or self.min_scene_seconds < 0:
            raise ValueError(
                f"scene_threshold must be positive and min_scene_seconds 0 or more, got "
                f"{self.scene_threshold}, {self.min_scene_seconds}"
            )
        if not 32 <= self.analysis_size <= 1080:
            raise ValueError(f"analysis_size must be from 32 to 1080, got {self.analysis_size}")
        if self.short_side and (self.short_side < 16 or self.short_side % 2):
            raise ValueError(f"short_side must be 0 (keep) or an even number from 16 up, got {self.short_side}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be in 0..51, got {self.crf}")
        if not 0 <= self.static_motion < self.chaotic_motion:
            raise ValueError(f"need 0 <= static_motion < chaotic_motion, got {self.static_motion}, {self.chaotic_motion}")
        if not 0 <= self.dedup_distance <= 15:
            raise ValueError(f"dedup_distance must be from 0 to 15 bits, got {self.dedup_distance}")

    def fingerprint(self) -> str:
        """A hash of everything that changes one source's clips; dedup is table-wide, so left out."""
        fields = asdict(self)
        fields.pop("dedup_distance")
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
