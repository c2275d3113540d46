"""Prompt upsampling for the Shapes World: free text -> ``PromptQuery`` -> canonical caption.

The Sora report upsamples terse prompts into the detailed captions the model was trained on
with a language model. The Shapes World's vocabulary is small enough for a deterministic parser:

1. tokenize: words (a hyphen splits them: ``up-right``, ``left-moving``) and list punctuation;
2. match phrases from ``vocabulary.PHRASES``, longest first (``not moving`` before ``moving``);
3. resolve backgrounds (``white background``, ``on black``), compose directions
   (``up and to the right`` -> up-right) and noun roles (``a red one``, ``square block``);
4. attach: each object noun gathers the modifiers right before it (``fast leftward red dot``,
   ``red and blue squares``); words after a noun belong to it until the next noun's modifiers
   (``a red ball moving left and a green square moving up``); words before the first noun
   belong to the first object (``moving left fast, a red ball``). Nearest wins: in ``a ball and
   a box moving left`` only the box moves left; a noun that refers back (``..., the box moving
   left``) counts as a new object.

Conventions, chosen where English is ambiguous:

- A word that cannot be honoured is kept in ``unknown_words`` (in order, as written), never
  rejected: words outside the vocabulary, a background colour on an object (``a white ball``),
  a second value for an attribute already named (``a fast ball moving slowly``: "slowly"), and
  everything past the world's 2 objects (``three balls``: "three"; ``a ball, a box and a
  triangle``: "triangle").
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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
from kinetoscope.shapes.vocabulary import DIRECTION_CONNECTORS, MAX_PHRASE_WORDS, PHRASES, Meaning

if TYPE_CHECKING:
    import numpy as np

MAX_OBJECTS = 2  # spec: "1 or 2 objects per clip"
MOVING_DIRECTIONS = tuple(d for d in DIRECTIONS if d != "still")

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[,;:.&]", re.IGNORECASE)
_ATTRIBUTE_OF_KIND = {"color": "color", "shape_adj": "shape", "shape": "shape", "size": "size"}
_ATTRIBUTE_OF_KIND |= {"speed": "speed", "direction": "direction"}
_MODIFIERS = {"color", "shape_adj", "size", "speed", "direction", "motion"}
_NOUNS = {"shape", "generic"}
# Kinds a noun phrase may hold before its noun; unknown words are likely adjectives ("shiny").
_PRE_NOUN = _MODIFIERS | {"det", "count", "unknown"}
_AXIS = {"up": "v", "down": "v", "left": "h", "right": "h"}


@dataclass(frozen=True)
class _Item:
    """A matched phrase covering tokens ``first..last``."""

    kind: str
    value: str | int | None
    text: str  # the phrase, lower case
    first: int
    last: int
    plural: bool = False


@dataclass
class _Group:
    """One object noun (None: a prompt with no noun) and the items attached to it."""

    noun: _Item | None
    segments: list[list[_Item]]  # the phrase before the noun ("a red", "and a blue"), split at "and"
    shared: list[_Item] = field(default_factory=list)  # the rest, in text order


@dataclass
class _Draft:
    attributes: dict[str, str] = field(default_factory=dict)
    moving: bool = False


@dataclass(frozen=True)
class _Parse:
    query: PromptQuery
    moving: tuple[bool, ...]  # per object: a motion word without a direction was seen


def _match(tokens: list[re.Match]) -> list[_Item]:
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
        items.append(_Item(meaning.kind, meaning.value, " ".join(keys[i : i + n]), i, i + n - 1, meaning.plural))
        i += n
    return items


def _neighbour(items: list[_Item], i: int, step: int, skip: set[str]) -> int | None:
    """Index of the nearest item before (step -1) or after (step 1) ``i`` whose kind is not in ``skip``."""
    i += step
    while 0 <= i < len(items) and items[i].kind in skip:
        i += step
    return i if 0 <= i < len(items) else None


def _kind_at(items: list[_Item], i: int | None) -> str | None:
    return None if i is None else items[i].kind


def _resolve_backgrounds(items: list[_Item]) -> list[_Item]:
    """``white background``, ``background is white``, ``on white``; any other black/white/gray is unknown."""
    out: list[_Item] = []
    i = 0
    while i < len(items):
        item, kind = items[i], items[i].kind
        if kind == "bg_color":
            after = _neighbour(items, i, 1, {"det", "stop"})
            if _kind_at(items, after) == "bg_noun":
                out.append(_Item("background", item.value, item.text, item.first, items[after].last))
                i = after + 1
                continue
            backed = _kind_at(items, _neighbour(items, i, -1, {"det", "stop"})) in ("bg_noun", "bg_prep")
            # "on a white ball": the colour modifies an object noun, so it is not the background.
            modifies = _kind_at(items, _neighbour(items, i, 1, _MODIFIERS | {"unknown"})) in _NOUNS
            kind = "background" if backed and not modifies else "unknown"
        elif kind in ("bg_noun", "bg_prep"):
            kind = "stop"
        out.append(_Item(kind, item.value, item.text, item.first, item.last, item.plural))
        i += 1
    return out


def _compose_directions(items: list[_Item]) -> list[_Item]:
    """Join a vertical and a horizontal direction across connectors: ``down and to the left``."""
    out: list[_Item] = []
    for item in items:
        if item.kind == "direction" and item.value in _AXIS:
            k = len(out) - 1
            while k >= 0 and out[k].text in DIRECTION_CONNECTORS:
                k -= 1
            prev = out[k] if k >= 0 else None
            if prev is not None and prev.kind == "direction" and _AXIS.get(prev.value) not in (None, _AXIS[item.value]):
                vertical, horizontal = (prev, item) if _AXIS[prev.value] == "v" else (item, prev)
                value = f"{vertical.value}-{horizontal.value}"
                out[k:] = [_Item("direction", value, value, prev.first, item.last)]
                continue
        out.append(item)
    return out


def _resolve_nouns(items: list[_Item]) -> list[_Item]:
    """``square block``: the first noun modifies the second; ``a red one``: "one" is a noun."""
    out = []
    for i, item in enumerate(items):
        nxt = items[i + 1] if i + 1 < len(items) else None
        kind = item.kind
        if kind in _NOUNS and nxt is not None and nxt.kind in _NOUNS:
            kind = "shape_adj" if kind == "shape" else "stop"
        elif item.text == "one":
            before = _kind_at(items, _neighbour(items, i, -1, {"det"}))
            if before in _MODIFIERS and (nxt is None or nxt.kind not in _NOUNS):
                kind = "generic"
        out.append(_Item(kind, item.value, item.text, item.first, item.last, item.plural and kind in _NOUNS))
    return out


def _pre_noun(items: list[_Item], noun: int) -> tuple[int, list[list[_Item]]]:
    """Where the noun's phrase starts, and its modifiers split into list segments.

    A list separator is crossed only after a colour or size (``red and blue squares``) and only if
    the earlier segment starts a phrase (after a separator or the start), so ``a ball that is red
    and a blue box`` keeps "red" on the ball.
    """
    segments: list[list[_Item]] = [[]]
    checkpoint: tuple[int, list[list[_Item]]] | None = None
    j = noun - 1
    while j >= 0:
        item = items[j]
        if item.kind in _PRE_NOUN:
            segments[0].insert(0, item)
        elif item.kind == "and" and _kind_at(items, _neighbour(items, j, -1, {"det"})) in ("color", "size"):
            checkpoint = (j + 1, [list(s) for s in segments])
            if item.text != ",":  # "a red, big ball" is one ball
                segments.insert(0, [])
        else:
            break
        j -= 1
    start = j + 1
    if checkpoint is not None and j >= 0 and items[j].kind not in ("and", "break", "background"):
        start, segments = checkpoint
    return start, segments


def _group(items: list[_Item]) -> list[_Group]:
    nouns = [i for i, item in enumerate(items) if item.kind in _NOUNS]
    if not nouns:
        attached = [it for it in items if it.kind in _MODIFIERS or it.kind == "count"]
        return [_Group(None, [], attached)] if attached else []
    groups: list[_Group] = []
    leading: list[_Item] = []
    after_previous = 0
    for n in nouns:
        start, segments = _pre_noun(items, n)
        if groups:
            groups[-1].shared += items[after_previous:start]
        else:
            leading = items[:start]
        groups.append(_Group(items[n], segments))
        after_previous = n + 1
    groups[-1].shared += items[after_previous:]
    groups[0].shared = leading + groups[0].shared
    return groups


def _assign(draft: _Draft, item: _Item) -> bool:
    """Give ``draft`` the item's attribute; False when it already holds another value."""
    if item.kind == "motion":
        draft.moving = True
        return True
    attribute = _ATTRIBUTE_OF_KIND[item.kind]
    return draft.attributes.setdefault(attribute, str(item.value)) == item.value


def _attach(groups: list[_Group]) -> tuple[list[_Draft], list[_Item]]:
    """Objects from noun groups, and the items that could not be honoured."""
    drafts: list[_Draft] = []
    rejected: list[_Item] = []
    for group in groups:
        segment_items = [it for s in group.segments for it in s]
        segments = [s for s in group.segments if any(it.kind in _MODIFIERS for it in s)]
        members = [it for it in segment_items + group.shared if it.kind in _MODIFIERS or it.kind == "count"]
        capacity = MAX_OBJECTS - len(drafts)
        if capacity == 0:
            rejected += members + ([group.noun] if group.noun else [])
            continue
        # The count before the noun sets the number; one after it only distributes ("two boxes, one red").
        counted = segment_items if group.noun is not None else group.shared
        counts = [it for it in counted if it.kind == "count"]
        later_counts = [it for it in members if it.kind == "count" and it not in counts]
        colors = {it.value for it in segment_items if it.kind == "color"}
        plural = group.noun is not None and group.noun.plural
        wanted = counts[0].value if counts else max(len(segments), len(colors), 2 if plural else 1)
        k = min(int(wanted), capacity)
        rejected += [it for it in counts if it.value != k] + [it for it in later_counts if int(it.value) > k]
        objects = [_Draft() for _ in range(k)]
        if group.noun is not None and group.noun.kind == "shape":
            for draft in objects:
                _assign(draft, group.noun)
        shared = group.shared
        one_color_each = all(sum(it.kind == "color" for it in s) <= 1 for s in segments)
        if k > 1 and len(segments) == k and one_color_each:
            for draft, segment in zip(objects, segments):
                rejected += [it for it in segment if it.kind in _MODIFIERS and not _assign(draft, it)]
        else:
            shared = sorted(segment_items + shared, key=lambda it: it.first)
        rejected += _distribute([it for it in shared if it.kind in _MODIFIERS], objects)
        drafts += objects
    return drafts, rejected


def _distribute(items: list[_Item], objects: list[_Draft]) -> list[_Item]:
    """One value of an attribute goes to every object; several go one per object, in order."""
    rejected = []
    for kind in ("motion", "color", "shape_adj", "size", "speed", "direction"):
        of_attribute = [it for it in items if it.kind == kind]
        values = list(dict.fromkeys(it.value for it in of_attribute))
        for item in of_attribute:
            if len(values) == 1:
                targets = objects
            else:
                j = values.index(item.value)
                targets = objects[j : j + 1]
            # A list, not a generator: every target gets the value even when one of them conflicts.
            if not targets or not all([_assign(draft, item) for draft in targets]):
                rejected.append(item)
    return rejected


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
    drafts, rejected = _attach(_group(items))
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


def upsample_prompt(text: str, *, seed: int = 0) -> str:
    """The canonical caption of ``complete_query(parse_prompt(text))``, deterministic per seed.

    The user's unknown words follow the canonical sentence, in order, so that the text encoder
    still sees them; with every word understood the result is exactly a canonical caption.
    """
    import numpy as np

    parsed = _parse(text)
    caption = canonical_caption(_complete(parsed.query, parsed.moving, np.random.default_rng(seed)))
    return " ".join((caption, *parsed.query.unknown_words))
