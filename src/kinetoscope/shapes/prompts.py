"""Prompt upsampling for the Shapes World: free text -> ``PromptQuery`` -> canonical caption.

The Sora report upsamples terse prompts into the detailed captions the model was trained on
with a language model. The Shapes World's vocabulary is small enough for a deterministic parser:

1. tokenize: words (a hyphen splits them: ``up-right``, ``left-moving``) and list punctuation;
2. match phrases from ``vocabulary.PHRASES``, longest first (``not moving`` before ``moving``);
3. resolve backgrounds (``white background``, ``on black``), compose directions
   (``up and to the right`` -> up-right) and noun roles: compounds (``square block``, ``a square
   one``); ``one`` is a count before its noun (``one red ball``) and a pronoun otherwise (``a red
   one``, ``one moving left``); a referent (``the other``, ``the first``, ``the second``,
   ``another``) is a pronoun alone and a mark on its noun otherwise (``the other ball``);
4. attach (``attach.py``): each object noun gathers the modifiers right before it (``fast leftward
   red dot``, ``red and blue squares``); words after a noun belong to it until the next noun's
   modifiers (``a red ball moving left and a green square moving up``); words before the first
   noun belong to the first object (``moving left fast, a red ball``). Nearest wins: in ``a ball
   and a box moving left`` only the box moves left; a noun that refers back (``..., the box
   moving left``) counts as a new object. ``both`` or ``each`` hands the words after it to every
   object (``a ball and a box, both moving left``);
5. refine: after a phrase that counts several objects (``two balls``, ``a pair of dots``, ``red and
   blue squares``) the phrases that follow describe those objects in order instead of adding new
   ones: referents (``two squares, one red and one green``; ``one moving left, the other moving
   up``; ``the first red, the second blue``) and, set off by "," or ":", phrases naming one object
   that fits (``two balls: a red one going left and a blue one going up``; ``two things, a ball
   and a box``). The plural's words go to every object (``two fast balls, ...``), each refinement
   adds its own, an ordinal picks its object (``the second red, the other blue``). Referents
   without "a" also describe a list of single objects that fills the world (``a ball and a box,
   the first moving left, the second moving up``);
6. a pronoun that adds an object takes the shape, and only the shape, of the object named before
   it: ``a red ball going left and a blue one heading up`` is a blue circle, ``a big red square and
   a small one`` a small square of open colour.

Conventions, chosen where English is ambiguous:

- A word that cannot be honoured is kept in ``unknown_words`` (in order, as written), never
  rejected: words outside the vocabulary, a background colour on an object (``a white ball``),
  a second value for an attribute already named (``a fast ball moving slowly``: "slowly"), and
  everything past the world's 2 objects (``three balls``: "three"; ``a ball, a box and a
  triangle``: "triangle"; ``two squares, one red, one green, one blue``: "one blue").
- An object past the counted ones is a new object, so past 2 it is unknown: "and" right after a
  plural adds one (``two balls and a red one``: "red one"), as does a phrase that contradicts the
  counted objects (``two red balls, a blue one``: "blue one") and, after single objects, a pronoun
  with "a" (``a ball, a box and a green one``: "green one").
- ``two red balls`` parses as asked (both red); ``complete_query`` then raises ValueError since
  two objects never share a colour.
- Still objects: a canonical caption says "stays still" without a speed, so parsing it gives
  ``speed=None``; ``parse_prompt(canonical_caption(s))`` equals ``PromptQuery.from_scene(s)`` with
  the speed of still objects set to None (the renderer ignores it).
- A motion word without a direction (``a bouncing ball``), or a speed, means the object moves:
  ``upsample_prompt`` then samples a moving direction, never "still". ``ObjectQuery`` has no field
  for "moves somewhere", so ``complete_query`` on a bare query can only apply the speed rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from kinetoscope.shapes.attach import MAX_OBJECTS, MODIFIERS, NOUNS, PRE_NOUN, Item, attach, neighbour
from kinetoscope.shapes.spec import (
    BACKGROUNDS,
    COLORS,
    DIRECTIONS,
    SHAPES,
    SIZES,
    SPEEDS,
    ObjectQuery,
    ObjectSpec,
    PromptQuery,
    SceneSpec,
    canonical_caption,
)
from kinetoscope.shapes.vocabulary import (
    DIRECTION_CONNECTORS,
    MAX_PHRASE_WORDS,
    NOUN_STOP_WORDS,
    PHRASES,
    Meaning,
)

if TYPE_CHECKING:
    import numpy as np

MOVING_DIRECTIONS = tuple(d for d in DIRECTIONS if d != "still")

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[,;:.&]", re.IGNORECASE)
_AXIS = {"up": "v", "down": "v", "left": "h", "right": "h"}


@dataclass(frozen=True)
class _Parse:
    query: PromptQuery
    moving: tuple[bool, ...]  # per object: a motion word without a direction was seen


def _match(tokens: list[re.Match]) -> list[Item]:
    """Longest phrase first at each position; anything else is one unknown word."""
    keys = [t.group().lower() for t in tokens]
    items, i = [], 0
    while i < len(keys):
        for n in range(min(MAX_PHRASE_WORDS, len(keys) - i), 0, -1):
            meaning = PHRASES.get(" ".join(keys[i : i + n]))
            if meaning is not None:
                break
        else:
            n, meaning = 1, Meaning("count", int(keys[i])) if keys[i].isdigit() else Meaning("unknown")
        items.append(Item(meaning.kind, meaning.value, " ".join(keys[i : i + n]), i, i + n - 1, meaning.plural))
        i += n
    return items


def _kind_at(items: list[Item], i: int | None) -> str | None:
    return None if i is None else items[i].kind


def _resolve_backgrounds(items: list[Item]) -> list[Item]:
    """``white background``, ``background is white``, ``on white``; any other black/white/gray is unknown."""
    out: list[Item] = []
    i = 0
    while i < len(items):
        item, kind = items[i], items[i].kind
        if kind == "bg_color":
            after = neighbour(items, i, 1, {"det", "stop"})
            if _kind_at(items, after) == "bg_noun":
                out.append(Item("background", item.value, item.text, item.first, items[after].last))
                i = after + 1
                continue
            backed = _kind_at(items, neighbour(items, i, -1, {"det", "stop"})) in ("bg_noun", "bg_prep")
            # "on a white ball": the colour modifies an object noun, so it is not the background.
            modifies = _kind_at(items, neighbour(items, i, 1, MODIFIERS | {"unknown"})) in NOUNS
            kind = "background" if backed and not modifies else "unknown"
        elif kind in ("bg_noun", "bg_prep"):
            kind = "stop"
        out.append(Item(kind, item.value, item.text, item.first, item.last, item.plural))
        i += 1
    return out


def _compose_directions(items: list[Item]) -> list[Item]:
    """Join a vertical and a horizontal direction across connectors: ``down and to the left``."""
    out: list[Item] = []
    for item in items:
        if item.kind == "direction" and item.value in _AXIS:
            k = len(out) - 1
            while k >= 0 and out[k].text in DIRECTION_CONNECTORS:
                k -= 1
            prev = out[k] if k >= 0 else None
            if prev is not None and prev.kind == "direction" and _AXIS.get(prev.value) not in (None, _AXIS[item.value]):
                vertical, horizontal = (prev, item) if _AXIS[prev.value] == "v" else (item, prev)
                value = f"{vertical.value}-{horizontal.value}"
                out[k:] = [Item("direction", value, value, prev.first, item.last)]
                continue
        out.append(item)
    return out


def _one(items: list[Item], i: int) -> Item:
    """``one`` is a count before its noun (``one red ball``) and a pronoun otherwise (``a red one``)."""
    item = items[i]
    after = neighbour(items, i, 1, MODIFIERS | {"det", "unknown"})
    counted = neighbour(items, i, 1, {"det", "and"})  # "one or two balls"
    nxt = items[i + 1] if i + 1 < len(items) else None
    if (
        _kind_at(items, after) in ("shape", "generic")
        or (counted is not None and items[counted].kind == "count" and items[counted].text != "one")
        or (nxt is not None and nxt.kind == "stop" and nxt.text in NOUN_STOP_WORDS)
    ):
        return item
    return replace(item, kind="pronoun", value=None)


def _referent(items: list[Item], i: int) -> Item:
    """``the other ball``: a mark on its noun; ``the other``: a pronoun; ``the other side``: nothing."""
    item = items[i]
    if _kind_at(items, neighbour(items, i, 1, PRE_NOUN)) in NOUNS:
        return item
    nxt = items[i + 1] if i + 1 < len(items) else None
    if nxt is not None and nxt.kind == "stop" and nxt.text in NOUN_STOP_WORDS:
        return replace(item, kind="det")
    return replace(item, kind="pronoun")


def _is_partitive(items: list[Item], i: int) -> bool:
    """``one of the balls``: the noun names the counted objects again, not a new one."""
    of = neighbour(items, i, -1, {"det"})
    if of is None or items[of].text != "of":
        return False
    return _kind_at(items, neighbour(items, of, -1, {"det"})) == "pronoun"


def _resolve_nouns(items: list[Item]) -> list[Item]:
    """Pronouns (``a red one``, ``the other``), and compounds: ``square block``, ``a square one``."""
    items = [_one(items, i) if it.kind == "count" and it.text == "one" else it for i, it in enumerate(items)]
    items = [_referent(items, i) if it.kind == "ref" else it for i, it in enumerate(items)]
    out = []
    for i, item in enumerate(items):
        nxt = items[i + 1] if i + 1 < len(items) else None
        kind = item.kind
        if kind in ("shape", "generic") and nxt is not None:
            # "balls one red": a plural noun does not modify the pronoun after it.
            adjective = nxt.kind in ("shape", "generic") or (nxt.text == "one" and nxt.kind == "pronoun")
            if adjective and not (nxt.kind == "pronoun" and item.plural):
                kind = "shape_adj" if kind == "shape" else "stop"
        if kind in ("shape", "generic") and _is_partitive(items, i):
            kind = "stop"
        out.append(replace(item, kind=kind, plural=item.plural and kind in NOUNS))
    return out


def _unknown_words(text: str, tokens: list[re.Match], indices: set[int]) -> tuple[str, ...]:
    """The tokens as written, rejoining hyphenated words (``star-shaped``) split by the tokenizer."""
    words: list[str] = []
    previous = None
    for i in sorted(indices):
        word = tokens[i].group()
        if previous == i - 1 and text[tokens[i - 1].end() : tokens[i].start()] == "-":
            words[-1] += f"-{word}"
        elif word.isalnum() or "'" in word:
            words.append(word)
        previous = i
    return tuple(words)


def _parse(text: str) -> _Parse:
    text = text.replace("\u2019", "'")
    tokens = list(_TOKEN.finditer(text))
    items = _resolve_nouns(_compose_directions(_resolve_backgrounds(_match(tokens))))
    drafts, rejected = attach(items)
    background = None
    for item in items:
        if item.kind == "background":
            if background is None:
                background = str(item.value)
            elif item.value != background:
                rejected.append(item)
    unknown = {i for it in items if it.kind == "unknown" for i in range(it.first, it.last + 1)}
    unknown |= {i for it in rejected for i in range(it.first, it.last + 1)}
    query = PromptQuery(
        background=background,
        objects=tuple(ObjectQuery(**d.attributes) for d in drafts),
        unknown_words=_unknown_words(text, tokens, unknown),
    )
    return _Parse(query, tuple(d.moving for d in drafts))


def parse_prompt(text: str) -> PromptQuery:
    """Free text -> structured attributes.

    Unnamed attributes stay None; words not understood go to ``unknown_words`` (in order,
    original spelling). See the module docstring for how ambiguous phrasings are read.

    >>> parse_prompt("fast leftward red dot on white").objects[0]
    ObjectQuery(color='red', shape='circle', size=None, direction='left', speed='quickly')
    """
    return _parse(text).query


def _pick(rng: np.random.Generator, options: Iterable[str]) -> str:
    choices = list(options)
    return choices[int(rng.integers(len(choices)))]


def _complete(query: PromptQuery, moving: tuple[bool, ...], rng: np.random.Generator) -> SceneSpec:
    objects = query.objects or (ObjectQuery(),)
    if len(objects) > MAX_OBJECTS:
        raise ValueError(f"the Shapes World has at most {MAX_OBJECTS} objects, the query has {len(objects)}")
    named = [o.color for o in objects if o.color is not None]
    for color in dict.fromkeys(named):
        if named.count(color) > 1:
            raise ValueError(f"asks for {named.count(color)} {color} objects, but two objects never share a colour")
    free_colors = [c for c in COLORS if c not in named]
    background = query.background or _pick(rng, BACKGROUNDS)
    specs = []
    for i, obj in enumerate(objects):
        color = obj.color or free_colors.pop(int(rng.integers(len(free_colors))))
        moves = obj.speed is not None or (i < len(moving) and moving[i])
        specs.append(
            ObjectSpec(
                color=color,
                shape=obj.shape or _pick(rng, SHAPES),
                size=obj.size or _pick(rng, SIZES),
                direction=obj.direction or _pick(rng, MOVING_DIRECTIONS if moves else DIRECTIONS),
                speed=obj.speed or _pick(rng, SPEEDS),
            )
        )
    return SceneSpec(background, tuple(specs))


def complete_query(query: PromptQuery, rng: np.random.Generator) -> SceneSpec:
    """Sample every attribute the query leaves open (spec: "anything not named is sampled").

    Open colours avoid the named ones, so objects never share a colour; a query with no objects
    gets one object; a named speed makes an open direction a moving one. Raises ValueError for a
    query the world cannot hold (more than 2 objects, two objects of one colour).
    """
    return _complete(query, (), rng)


def upsample_prompt(text: str, *, seed: int = 0, frames: np.ndarray | None = None) -> str:
    """The canonical caption of ``complete_query(parse_prompt(text))``, deterministic per seed.

    The user's unknown words follow the canonical sentence, in order, so that the text encoder
    still sees them; with every word understood the result is exactly a canonical caption.
    Given ``frames`` (uint8 ``"t h w c"``: an image or video the output must agree with), what
    the prompt leaves open is read from them first (:mod:`kinetoscope.shapes.grounding`).
    """
    import numpy as np

    parsed = _parse(text)
    query = parsed.query
    if frames is not None:
        from kinetoscope.shapes.grounding import ground_prompt

        query = ground_prompt(query, frames)
    return _worded(_complete(query, parsed.moving, np.random.default_rng(seed)), parsed.query.unknown_words)


def _worded(scene: SceneSpec, unknown_words: tuple[str, ...]) -> str:
    """What ``upsample_prompt`` writes: the scene's canonical caption, then the words not understood."""
    return " ".join((canonical_caption(scene), *unknown_words))


def motion_contrast_caption(caption: str) -> str | None:
    """The caption a video of ``caption`` must not match in motion (``swaps.motion_contrast``): the
    same canonical sentence with the direction reversed (one object) or the two objects' motions
    exchanged, unknown words kept. None where nothing moves, or where ``caption`` is not a canonical
    caption (what ``upsample_prompt`` writes): a contrast must differ from its prompt in motion
    alone, so every attribute has to be named already.

    >>> motion_contrast_caption("A large red circle moves slowly to the right on a black background.")
    'A large red circle moves slowly to the left on a black background.'
    >>> motion_contrast_caption("a red ball moving right") is None
    True
    """
    import numpy as np

    from kinetoscope.shapes.swaps import motion_contrast

    parsed = _parse(caption)
    # A still object's speed is drawn here, but no caption word depends on it.
    scene = _complete(parsed.query, parsed.moving, np.random.default_rng(0))
    words = parsed.query.unknown_words
    if _worded(scene, words) != caption:
        return None
    contrast = motion_contrast(scene)
    return None if contrast is None else _worded(contrast, words)
