"""The attachment step of the prompt parser: phrase items -> described objects.

``prompts`` turns text into ``Item``s (phrases matched, backgrounds, directions, nouns and
referents resolved); this module groups them around object nouns, decides how many objects each
group names or which earlier objects it describes, and gives every object its attributes. The
rules it follows are listed, with examples, in the module docstring of ``prompts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_OBJECTS = 2  # spec: "1 or 2 objects per clip"

MODIFIERS = frozenset({"color", "shape_adj", "size", "speed", "direction", "motion"})
# A pronoun stands for a noun: "one" in "a red one", or a referent alone ("the other").
NOUNS = frozenset({"shape", "generic", "pronoun"})
# Kinds a noun phrase may hold before its noun; unknown words are likely adjectives ("shiny").
PRE_NOUN = MODIFIERS | {"det", "count", "unknown", "ref", "all"}

_ATTRIBUTE_OF_KIND = {"color": "color", "shape_adj": "shape", "shape": "shape", "size": "size"}
_ATTRIBUTE_OF_KIND |= {"speed": "speed", "direction": "direction"}
# "two balls, a red one ...", "two balls: ...": what follows these describes the counted objects.
_APPOSITION = (",", ":")


@dataclass(frozen=True)
class Item:
    """A matched phrase covering tokens ``first..last``, its kind (see ``vocabulary.PHRASES``) and value."""

    kind: str
    value: str | int | None
    text: str  # the phrase, lower case
    first: int
    last: int
    plural: bool = False


@dataclass
class Draft:
    """One object being described: the spec values named so far, and whether a motion word was seen."""

    attributes: dict[str, str] = field(default_factory=dict)
    moving: bool = False


@dataclass
class _Group:
    """One object noun (None: a prompt with no noun) and the items attached to it."""

    noun: Item | None
    segments: list[list[Item]]  # the phrase before the noun ("a red", "and a blue"), split at "and"
    opener: Item | None = None  # the item right before the phrase: "," in "two balls, a red one"
    shared: list[Item] = field(default_factory=list)  # the rest, in text order

    def phrase(self) -> list[Item]:
        return [it for s in self.segments for it in s]

    def is_referent(self) -> bool:
        """``a red one``, ``the other``, ``one red ball``, ``the first ball``: it may point back."""
        marks = [it for it in self.phrase() if it.kind == "ref" or (it.kind == "count" and it.text == "one")]
        return self.noun is not None and (self.noun.kind == "pronoun" or bool(marks))

    def is_indefinite(self) -> bool:
        return any(it.text in ("a", "an") for it in self.phrase())

    def place(self) -> int | None:
        """Which counted object an ordinal names (1, 2); None: the next one not yet described."""
        for it in [self.noun, *self.phrase()]:
            if it is not None and it.kind in ("pronoun", "ref") and it.value is not None:
                return int(it.value)
        return None


@dataclass
class _Counted:
    """Objects that later referent phrases describe one at a time, in order."""

    objects: list[Draft]
    plural: bool  # counted by one plural phrase ("two balls"), not listed one by one ("a ball and a box")
    described: set[int] = field(default_factory=set)


def neighbour(items: list[Item], i: int, step: int, skip: set[str] | frozenset[str]) -> int | None:
    """Index of the nearest item before (step -1) or after (step 1) ``i`` whose kind is not in ``skip``."""
    i += step
    while 0 <= i < len(items) and items[i].kind in skip:
        i += step
    return i if 0 <= i < len(items) else None


def _pre_noun(items: list[Item], noun: int) -> tuple[int, list[list[Item]]]:
    """Where the noun's phrase starts, and its modifiers split into list segments.

    A list separator is crossed only after a colour or size (``red and blue squares``) and only if
    the earlier segment starts a phrase (after a separator or the start), so ``a ball that is red
    and a blue box`` keeps "red" on the ball.
    """
    segments: list[list[Item]] = [[]]
    checkpoint: tuple[int, list[list[Item]]] | None = None
    j = noun - 1
    while j >= 0:
        item = items[j]
        before = neighbour(items, j, -1, {"det"})
        if item.kind in PRE_NOUN:
            segments[0].insert(0, item)
        elif item.kind == "and" and before is not None and items[before].kind in ("color", "size"):
            # Undone, if the list does not start a phrase, back to the nearest separator:
            # "one big and red, one small" keeps "red" on the first "one".
            checkpoint = checkpoint or (j + 1, [list(s) for s in segments])
            if item.text != ",":  # "a red, big ball" is one ball
                segments.insert(0, [])
        else:
            break
        j -= 1
    start = j + 1
    if checkpoint is not None and j >= 0 and items[j].kind not in ("and", "break", "background"):
        start, segments = checkpoint
    return start, segments


def _group(items: list[Item]) -> list[_Group]:
    nouns = [i for i, item in enumerate(items) if item.kind in NOUNS]
    if not nouns:
        attached = [it for it in items if it.kind in MODIFIERS or it.kind == "count"]
        return [_Group(None, [], shared=attached)] if attached else []
    groups: list[_Group] = []
    leading: list[Item] = []
    after_previous = 0
    for n in nouns:
        start, segments = _pre_noun(items, n)
        if groups:
            groups[-1].shared += items[after_previous:start]
        else:
            leading = items[:start]
        groups.append(_Group(items[n], segments, items[start - 1] if start > 0 else None))
        after_previous = n + 1
    groups[-1].shared += items[after_previous:]
    groups[0].shared = leading + groups[0].shared
    return groups


def _assign(draft: Draft, item: Item) -> bool:
    """Give ``draft`` the item's attribute; False when it already holds another value."""
    if item.kind == "motion":
        draft.moving = True
        return True
    attribute = _ATTRIBUTE_OF_KIND[item.kind]
    return draft.attributes.setdefault(attribute, str(item.value)) == item.value


def _distribute(items: list[Item], objects: list[Draft]) -> list[Item]:
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


class _Attachment:
    """Walks the groups in text order, creating objects or describing counted ones."""

    def __init__(self) -> None:
        self.drafts: list[Draft] = []
        self.rejected: list[Item] = []
        self.counted: _Counted | None = None
        self.refining = False  # the previous group described counted objects: "and a blue one" goes on
        self.after_counted = False  # the previous group counted the objects or described them
        self.last_shape: str | None = None  # what a pronoun stands for: "a red ball and a blue one"

    def add(self, group: _Group) -> None:
        phrase = group.phrase()
        segments = [s for s in group.segments if any(it.kind in MODIFIERS for it in s)]
        members = [it for it in phrase + group.shared if it.kind in MODIFIERS or it.kind == "count"]
        # The count before the noun sets the number; a count after it only has to agree with it.
        counts = [it for it in (phrase if group.noun is not None else group.shared) if it.kind == "count"]
        later_counts = [it for it in members if it.kind == "count" and it not in counts]
        colors = {it.value for it in phrase if it.kind == "color"}
        plural = group.noun is not None and group.noun.plural
        wanted = int(counts[0].value) if counts else max(len(segments), len(colors), 2 if plural else 1)
        refines = self._refines(group)
        objects = self._describe(group, wanted) if refines else self._create(wanted)
        if not objects:
            marks = [it for it in phrase if it.kind == "ref"]
            self.rejected += members + marks + ([group.noun] if group.noun else [])
            self.refining = self.after_counted = False
            return
        k = len(objects)
        self.rejected += [it for it in counts if it.value != k] + [it for it in later_counts if int(it.value) > k]
        if group.noun is not None and group.noun.kind == "shape":
            if not all([_assign(draft, group.noun) for draft in objects]):
                self.rejected.append(group.noun)
        cut = next((i for i, it in enumerate(group.shared) if it.kind == "all"), len(group.shared))
        own, everyone = group.shared[:cut], group.shared[cut:]
        one_color_each = all(sum(it.kind == "color" for it in s) <= 1 for s in segments)
        if k > 1 and len(segments) == k and one_color_each:
            for draft, segment in zip(objects, segments):
                self.rejected += [it for it in segment if it.kind in MODIFIERS and not _assign(draft, it)]
        else:
            own = sorted(phrase + own, key=lambda it: it.first)
        self.rejected += _distribute([it for it in own if it.kind in MODIFIERS], objects)
        if everyone:  # "..., both moving left"
            together = self.counted.objects if refines and self.counted else self.drafts
            self.rejected += _distribute([it for it in everyone if it.kind in MODIFIERS], together)
        # Last, so that the pronoun's own shape word wins: "a red ball and a square one".
        inherits = not refines or (self.counted is not None and self.counted.plural)
        if group.noun is not None and group.noun.kind == "pronoun" and inherits and self.last_shape:
            for draft in objects:
                draft.attributes.setdefault("shape", self.last_shape)
        self.last_shape = objects[-1].attributes.get("shape")
        self._update(objects, wanted, refines)

    def _refines(self, group: _Group) -> bool:
        """Does the group describe counted objects rather than add new ones?

        A bare referent (``one red``, ``the other``) always does. Right after a plural, so does a
        phrase set off by "," or ":" (``two balls, a red one``) and the phrases listed after it,
        when each names one object that fits the next counted one (``two balls, a box`` adds one).
        """
        if self.counted is None or group.noun is None:
            return False
        if group.is_referent() and not group.is_indefinite():
            return True
        opener = group.opener
        apposed = opener is not None and opener.text in _APPOSITION
        continued = self.refining and opener is not None and opener.kind == "and"  # not across a "."
        listed = self.counted.plural and self.after_counted and (apposed or continued)
        return listed and self._fits(group)

    def _fits(self, group: _Group) -> bool:
        """One object, and nothing it says contradicts the next counted one: it describes, not adds."""
        assert self.counted is not None and group.noun is not None
        if group.noun.plural or any(it.kind == "count" and it.text != "one" for it in group.phrase()):
            return False
        counted = self.counted
        free = [o for i, o in enumerate(counted.objects) if i not in counted.described]
        said = [group.noun, *group.phrase(), *group.shared]
        said = said[: next((i for i, it in enumerate(said) if it.kind == "all"), len(said))]
        return bool(free) and all(
            free[0].attributes.get(_ATTRIBUTE_OF_KIND[it.kind], it.value) == it.value
            for it in said
            if it.kind in _ATTRIBUTE_OF_KIND
        )

    def _describe(self, group: _Group, wanted: int) -> list[Draft]:
        assert self.counted is not None
        counted, place = self.counted, group.place()
        if place is not None:
            places = [place - 1] if place <= len(counted.objects) else []
        else:
            places = [i for i in range(len(counted.objects)) if i not in counted.described][:wanted]
        counted.described.update(places)
        return [counted.objects[i] for i in places]

    def _create(self, wanted: int) -> list[Draft]:
        objects = [Draft() for _ in range(min(wanted, MAX_OBJECTS - len(self.drafts)))]
        self.drafts += objects
        return objects

    def _update(self, objects: list[Draft], wanted: int, refines: bool) -> None:
        self.refining = refines
        self.after_counted = refines or wanted > 1
        if refines:
            return
        if wanted > 1:
            self.counted = _Counted(objects, plural=True)
        elif len(self.drafts) > 1:
            self.counted = _Counted(list(self.drafts), plural=False)
        else:
            self.counted = None


def attach(items: list[Item]) -> tuple[list[Draft], list[Item]]:
    """The objects the items describe, in order, and the items that could not be honoured."""
    attachment = _Attachment()
    for group in _group(items):
        attachment.add(group)
    return attachment.drafts, attachment.rejected
