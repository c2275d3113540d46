"""The Shapes World spec v1 as data: palettes, sizes, speeds, directions, and scene descriptions.

Every number here is the one ``SHAPES_WORLD.md`` gives; the renderer draws with them and the
analyzer assumes them, so they live in exactly one place.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

FPS = 8
MIN_SIDE, MAX_SIDE, SIDE_MULTIPLE = 32, 256, 8
MAX_FRAMES = 64
DEFAULT_HEIGHT = DEFAULT_WIDTH = 64
DEFAULT_NUM_FRAMES = 16

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
}
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "orange": (245, 145, 30),
    "yellow": (240, 220, 40),
    "green": (40, 190, 70),
    "blue": (40, 90, 230),
    "purple": (150, 60, 210),
}
SHAPES = ("circle", "square", "triangle")
# Side of the shape's square bounding box, as a fraction of min(H, W).
SIZES: dict[str, float] = {"small": 0.20, "large": 0.35}
# Distance per frame, as a fraction of min(H, W).
SPEEDS: dict[str, float] = {"slowly": 0.02, "quickly": 0.04}
# The analyzer's boundary between the two speed classes (spec: "mean speed below or above 0.03").
SPEED_THRESHOLD = 0.03

_D = 1 / math.sqrt(2)  # a diagonal keeps the same speed, split equally over the two axes
# Unit velocity (dx, dy) per direction; +y is down (towards the last row).
DIRECTIONS: dict[str, tuple[float, float]] = {
    "right": (1.0, 0.0),
    "left": (-1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
    "up-right": (_D, -_D),
    "up-left": (-_D, -_D),
    "down-right": (_D, _D),
    "down-left": (-_D, _D),
    "still": (0.0, 0.0),
}
# How each direction reads in a canonical caption, after "moves <speed>".
_DIRECTION_PHRASES: dict[str, str] = {
    "right": "to the right",
    "left": "to the left",
    "up": "up",
    "down": "down",
    "up-right": "up and to the right",
    "up-left": "up and to the left",
    "down-right": "down and to the right",
    "down-left": "down and to the left",
}


@dataclass(frozen=True)
class ObjectSpec:
    """One object's ground truth. ``speed`` is ignored (kept as given) when ``direction`` is still."""

    color: str
    shape: str
    size: str
    direction: str
    speed: str

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("color", self.color, COLORS),
            ("shape", self.shape, SHAPES),
            ("size", self.size, SIZES),
            ("direction", self.direction, DIRECTIONS),
            ("speed", self.speed, SPEEDS),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}")

    def side(self, height: int, width: int) -> float:
        """Side of the bounding box in pixels."""
        return SIZES[self.size] * min(height, width)

    def velocity(self, height: int, width: int) -> tuple[float, float]:
        """Initial velocity (dx, dy) in pixels per frame."""
        ux, uy = DIRECTIONS[self.direction]
        v = SPEEDS[self.speed] * min(height, width)
        return ux * v, uy * v


@dataclass(frozen=True)
class SceneSpec:
    """A clip's ground truth: the background and 1 or 2 objects (the second drawn over the first)."""

    background: str
    objects: tuple[ObjectSpec, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.background not in BACKGROUNDS:
            raise ValueError(f"unknown background {self.background!r}; expected one of {', '.join(BACKGROUNDS)}")
        if not 1 <= len(self.objects) <= 2:
            raise ValueError(f"a scene has 1 or 2 objects, got {len(self.objects)}")
        colors = [o.color for o in self.objects]
        if len(set(colors)) != len(colors):
            raise ValueError(f"two objects never share a colour, got {colors}")

    def to_dict(self) -> dict:
        return {"background": self.background, "objects": [asdict(o) for o in self.objects]}

    @classmethod
    def from_dict(cls, data: dict) -> SceneSpec:
        return cls(data["background"], tuple(ObjectSpec(**o) for o in data["objects"]))


def object_phrase(obj: ObjectSpec) -> str:
    """'a large red circle moves slowly to the right' / 'a small blue triangle stays still'."""
    noun = f"a {obj.size} {obj.color} {obj.shape}"
    if obj.direction == "still":
        return f"{noun} stays still"
    return f"{noun} moves {obj.speed} {_DIRECTION_PHRASES[obj.direction]}"


def canonical_caption(scene: SceneSpec) -> str:
    """The dataset's detailed caption, naming every attribute (spec "Captions").

    >>> canonical_caption(SceneSpec("black", (ObjectSpec("red", "circle", "large", "right", "slowly"),)))
    'A large red circle moves slowly to the right on a black background.'
    """
    body = " and ".join(object_phrase(o) for o in scene.objects)
    return f"{body[0].upper()}{body[1:]} on a {scene.background} background."


def validate_canvas(height: int, width: int, num_frames: int) -> None:
    """Raise ValueError naming the bad value when a canvas is outside the spec."""
    for name, side in (("height", height), ("width", width)):
        if side % SIDE_MULTIPLE or not MIN_SIDE <= side <= MAX_SIDE:
            raise ValueError(f"{name} {side} must be a multiple of {SIDE_MULTIPLE} from {MIN_SIDE} to {MAX_SIDE}")
    if not 1 <= num_frames <= MAX_FRAMES:
        raise ValueError(f"num_frames {num_frames} must be from 1 to {MAX_FRAMES}")


@dataclass(frozen=True)
class ObjectQuery:
    """What a prompt asks of one object; ``None`` means the prompt leaves that attribute open."""

    color: str | None = None
    shape: str | None = None
    size: str | None = None
    direction: str | None = None
    speed: str | None = None

    @classmethod
    def from_spec(cls, obj: ObjectSpec) -> ObjectQuery:
        return cls(**asdict(obj))

    def named(self) -> dict[str, str]:
        """The attributes the prompt names, ``{attribute: value}``."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class PromptQuery:
    """A prompt as structured attributes: what prompt upsampling parses and the analyzer checks.

    ``unknown_words`` are the user's words the parser did not understand, kept in order so
    that they still reach the text encoder.
    """

    background: str | None = None
    objects: tuple[ObjectQuery, ...] = ()
    unknown_words: tuple[str, ...] = ()

    @classmethod
    def from_scene(cls, scene: SceneSpec) -> PromptQuery:
        """The query that names every attribute of ``scene``."""
        return cls(scene.background, tuple(ObjectQuery.from_spec(o) for o in scene.objects))
