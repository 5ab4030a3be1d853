"""Template descriptions of the target at a point ("what is this?").

A description states, for an object: its category, colour, the share of the view it takes
up (:func:`scene_facts.size_class`; never an absolute size), place in the view, the
nearest other object with the target's relation to it, and the surface it stands on when
that is known; for a surface or area (road, sky...): what it is, its main colour, how much
of the view it covers and where. Every fact comes from :mod:`owl_data.generators.scene_facts`;
the seed only picks among equivalent wordings and questions, so the same target gives the
same facts whatever the point or seed.

Uniqueness within an image: when another instance of the same category and kind shares the
target's category, colour, size and coarse position (the words a description is built
from), both descriptions add the rank from the left ("the second from the left of the three
cars in view"), which no other instance shares. The total ("of the three cars") is named
only when :func:`scene_facts.countable` holds (every instance of that category and kind has
at least ``COUNT_MIN_PIXELS`` visible pixels); otherwise the rank is stated without a
number ("the second from the left among the traffic signs in view"), the ordinal still
counting every instance so that it stays unique.

People (``person``, ``rider``, ``pedestrian``) are never "it" nor "an object": sentences
about such a target start with "The <category>" ("The person is to the left of a red car.",
opening with "This is" / "Here is" / "You are looking at"), and a person next to the
target is introduced with "Closest to it/the <category> is ..." and referred back to as
"that <category>".

Rows carry ``generator = f"{GENERATOR_VERSION}/description"``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from owl_data.generators import GENERATOR_VERSION, GeneratedQA, GeneratorConfig
from owl_data.generators import scene_facts as sf
from owl_data.ingest.geometry import ResolvedInstance, ResolvedScene

__all__ = [
    "DESCRIPTION_GENERATOR",
    "OBJECT_QUESTIONS",
    "AREA_QUESTIONS",
    "DescriptionFacts",
    "description_facts",
    "describe",
    "rng_for",
    "with_article",
    "plural",
    "number_word",
    "ordinal_phrase",
    "position_phrase",
    "render_description",
    "coloured_noun",
]

DESCRIPTION_GENERATOR = f"{GENERATOR_VERSION}/description"

OBJECT_QUESTIONS = (
    "What is this?",
    "What am I looking at?",
    "What is at the point?",
    "Describe the object at the point.",
    "Describe the object in detail.",
    "Tell me about the thing I am pointing at.",
)
AREA_QUESTIONS = (
    "What is this?",
    "What am I looking at?",
    "What is at the point?",
    "Describe what is at the point.",
)

_IRREGULAR = {
    "person": "people", "sheep": "sheep", "mouse": "mice", "knife": "knives",
    "skis": "skis", "scissors": "scissors", "bus": "buses", "glass": "glasses",
}
_NUMBERS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve",
)
_ORDINALS = (
    "", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
    "ninth", "tenth", "eleventh", "twelfth",
)
_POSITIONS = {
    ("left", "top"): "in the upper left of the view",
    ("centre", "top"): "at the top centre of the view",
    ("right", "top"): "in the upper right of the view",
    ("left", "middle"): "on the left of the view",
    ("centre", "middle"): "in the centre of the view",
    ("right", "middle"): "on the right of the view",
    ("left", "bottom"): "in the lower left of the view",
    ("centre", "bottom"): "at the bottom centre of the view",
    ("right", "bottom"): "in the lower right of the view",
}
_AREA_NP = {
    "road": "the road surface", "sidewalk": "the sidewalk", "sky": "the sky",
    "building": "a building", "vegetation": "vegetation", "terrain": "terrain",
    "parking": "a parking area", "rail track": "a rail track", "ground": "the ground",
    "wall": "a wall", "fence": "a fence", "guard rail": "a guard rail", "bridge": "a bridge",
    "tunnel": "a tunnel",
}
_SHARE_WORDS = {"tiny": "a tiny part", "small": "a small part", "sizeable": "a sizeable part",
                "large": "a large part"}
"""How much of the view a :func:`scene_facts.size_class` takes up, said as a share of the view
(thresholds there: 1%, 10%, 30% of the frame); never an absolute size ("a small car")."""
_RELATION_WORDS = {
    "left of": "to the left of", "right of": "to the right of", "above": "above",
    "below": "below",
}
_WIDE = 0.6  # an area whose box spans this fraction of the width "stretches across" the view


def rng_for(seed: int, *salt: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and a salt (so each use has its own stream)."""
    words = [int(seed) % (1 << 63)] + [zlib.crc32(s.encode()) for s in salt]
    return np.random.default_rng(words)


def with_article(phrase: str) -> str:
    """``a``/``an`` + phrase by the first letter (vowel rule)."""
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def plural(category: str) -> str:
    """English plural of a category name (last word inflected, a few irregulars)."""
    head, _, last = category.rpartition(" ")
    if last in _IRREGULAR:
        word = _IRREGULAR[last]
    elif last.endswith(("s", "x", "ch", "sh")):
        word = last + "es"
    elif last.endswith("y") and last[-2:-1] not in tuple("aeiou"):
        word = last[:-1] + "ies"
    else:
        word = last + "s"
    return f"{head} {word}" if head else word


def number_word(n: int) -> str:
    """``one`` ... ``twelve``, digits above."""
    return _NUMBERS[n] if 0 <= n < len(_NUMBERS) else str(n)


def ordinal_phrase(rank: int, total: int) -> str:
    """``leftmost``, ``rightmost`` or ``second from the left`` for a 1-based rank of ``total``."""
    if rank == 1:
        return "leftmost"
    if rank == total:
        return "rightmost"
    word = _ORDINALS[rank] if rank < len(_ORDINALS) else f"number {rank}"
    return f"{word} from the left"


def position_phrase(horizontal: str, vertical: str) -> str:
    """Words for a :func:`~owl_data.generators.scene_facts.frame_position` pair."""
    return _POSITIONS[(horizontal, vertical)]


@dataclass(frozen=True)
class DescriptionFacts:
    """The facts a description states, all computed by :mod:`scene_facts`.

    Attributes:
        category: the target's category.
        area: True for a surface or area (road, sky...), False for an object.
        colour: colour name (one basic term or two, "red and white"), or None when no term
            dominates the interior (:func:`scene_facts.colour_of`): then no colour word is said.
        size: the share of the frame it takes (:func:`scene_facts.size_class`: ``tiny`` /
            ``small`` / ``sizeable`` / ``large``), or None (no area, e.g. a point-only target).
        horizontal, vertical: frame position of the box centre in thirds.
        wide: an area whose box spans at least 60% of the width.
        neighbour: category of the nearest other object, or None.
        neighbour_colour: its colour.
        relation: where the target is relative to that neighbour, or None.
        surface: ``road``/``sidewalk`` under the target, or None.
        rank: (rank from the left, total) when needed to tell the target from a look-alike.
        rank_total: whether the rank phrase may name the total (:func:`scene_facts.countable`).
    """

    category: str
    area: bool
    colour: str | None
    size: str | None
    horizontal: str
    vertical: str
    wide: bool
    neighbour: str | None
    neighbour_colour: str | None
    relation: str | None
    surface: str | None
    rank: tuple[int, int] | None
    rank_total: bool = True


def _key(scene: ResolvedScene, inst: ResolvedInstance) -> tuple:
    """The words a description is built from, before neighbour, surface and rank."""
    h, v = sf.frame_position(inst.bbox)
    if sf.is_area(inst) and (inst.bbox[2] - inst.bbox[0]) >= _WIDE:
        h = "across"
    return (inst.category, sf.is_area(inst), sf.colour_of(scene, inst),
            sf.size_class(inst.area), h, v)


def _needs_rank(scene: ResolvedScene, target: ResolvedInstance) -> bool:
    peers = [
        o for o in scene.instances
        if o is not target and o.instance != target.instance and not o.source.crowd
        and o.category == target.category and o.kind == target.kind
    ]
    if not peers:
        return False
    key = _key(scene, target)
    return any(_key(scene, o) == key for o in peers)


_UNSET = object()


def description_facts(
    scene: ResolvedScene, target: ResolvedInstance, *, neighbour=_UNSET
) -> DescriptionFacts:
    """Compute every fact the description of ``target`` states (independent of the point).

    ``neighbour`` may pass :func:`scene_facts.nearest_neighbour` already computed (None
    meaning "no neighbour") so callers that need it too compute it once.
    """
    area = sf.is_area(target)
    h, v = sf.frame_position(target.bbox)
    if area:
        nb = None
    else:
        nb = sf.nearest_neighbour(scene, target) if neighbour is _UNSET else neighbour
    return DescriptionFacts(
        category=target.category,
        area=area,
        colour=sf.colour_of(scene, target),
        size=sf.size_class(target.area),
        horizontal=h,
        vertical=v,
        wide=area and (target.bbox[2] - target.bbox[0]) >= _WIDE,
        neighbour=nb.instance.category if nb else None,
        neighbour_colour=sf.colour_of(scene, nb.instance) if nb else None,
        relation=nb.relation if nb else None,
        surface=None if area else sf.surface_under(scene, target),
        rank=sf.rank_from_left(scene, target) if _needs_rank(scene, target) else None,
        rank_total=sf.countable(scene, target),
    )


def _pick(rng: np.random.Generator, options: tuple | list):
    return options[int(rng.integers(len(options)))]


_WEARERS = frozenset({"person", "rider", "pedestrian"})


def coloured_noun(category: str, colour: str | None) -> str:
    """``a red car``; ``a person in black`` for people (their colour is their clothing)."""
    if colour is None:
        return with_article(category)
    if category in _WEARERS:
        return f"{with_article(category)} in {colour}"
    return with_article(f"{colour} {category}")


def _rank_text(f: DescriptionFacts, noun_plural: str) -> str:
    """``the second from the left of the three cars in view``, or without the total."""
    r, n = f.rank
    if f.rank_total:
        return f"the {ordinal_phrase(r, n)} of the {number_word(n)} {noun_plural} in view"
    return f"the {ordinal_phrase(r, n)} among the {noun_plural} in view"


def _object_text(f: DescriptionFacts, rng: np.random.Generator) -> str:
    person = f.category in _WEARERS
    # the target as a sentence subject ("It" / "The person") and mid-sentence ("it" / "the person")
    subj = f"The {f.category}" if person else "It"
    obj = f"the {f.category}" if person else "it"
    intro = ("This is {}.", "Here is {}.", "You are looking at {}.") if person else (
        "This is {}.", "It is {}.", "You are looking at {}.")
    parts = [_pick(rng, intro).format(coloured_noun(f.category, f.colour))]
    if f.rank:
        parts.append(f"{subj} is {_rank_text(f, plural(f.category))}.")
    pos = position_phrase(f.horizontal, f.vertical)
    if f.size:
        tpl = _pick(rng, ("{subj} sits {pos}, taking up {share} of the view.",
                          "{subj} takes up {share} of the view and sits {pos}."))
        parts.append(tpl.format(subj=subj, share=_SHARE_WORDS[f.size], pos=pos))
    else:
        parts.append(f"{subj} sits {pos}.")
    if f.neighbour:
        nb = coloured_noun(f.neighbour, f.neighbour_colour)
        back = f"that {f.neighbour}" if f.neighbour in _WEARERS else "it"  # the neighbour, referred back to
        if f.relation:
            rel = _RELATION_WORDS[f.relation]
            tpl = _pick(rng, ("{subj} is {rel} {nb}.",
                              "The closest other object is {nb}, and this one is {rel} {back}."))
            if f.neighbour in _WEARERS:  # a person is no "object"
                tpl = tpl.replace("The closest other object is", "Closest to {obj} is")
            parts.append(tpl.format(subj=subj, rel=rel, nb=nb, back=back, obj=obj))
        else:
            parts.append(f"Right beside {obj} is {nb}.")
    if f.surface:
        tpl = _pick(rng, ("{subj} is on the {s}.", "{subj} stands on the {s}."))
        parts.append(tpl.format(subj=subj, s=f.surface))
    return " ".join(parts)


def _area_text(f: DescriptionFacts, rng: np.random.Generator) -> str:
    np_ = _AREA_NP.get(f.category, f"an area of {f.category}")
    parts = [_pick(rng, ("This is {}.", "You are looking at {}.")).format(np_)]
    if f.rank:
        parts.append(f"It is {_rank_text(f, f.category + ' areas')}.")
    if f.colour:
        parts.append(f"It is mostly {f.colour}.")
    if f.wide:
        vert = {"top": "the upper part", "middle": "the middle", "bottom": "the lower part"}
        where = f"stretching across {vert[f.vertical]} of the view"
    else:
        where = position_phrase(f.horizontal, f.vertical)
    if f.size:
        parts.append(f"It covers {_SHARE_WORDS[f.size]} of the view, {where}.")
    else:
        parts.append(f"It lies {where}.")
    return " ".join(parts)


def render_description(f: DescriptionFacts, rng: np.random.Generator) -> str:
    """Put the facts into words, the wording chosen by ``rng``."""
    return _area_text(f, rng) if f.area else _object_text(f, rng)


def describe(
    scene: ResolvedScene, target: ResolvedInstance, *, seed: int, config: GeneratorConfig,
    neighbour=_UNSET,
) -> list[GeneratedQA]:
    """Description rows for the target: with a pooled question and/or without a question.

    ``neighbour``: as in :func:`description_facts`.
    """
    facts = description_facts(scene, target, neighbour=neighbour)
    rows = []
    if config.description_with_question:
        rng = rng_for(seed, "description", "asked")
        pool = AREA_QUESTIONS if facts.area else OBJECT_QUESTIONS
        q = _pick(rng, pool)
        rows.append(GeneratedQA("description", q, render_description(facts, rng), DESCRIPTION_GENERATOR))
    if config.description_no_question:
        rng = rng_for(seed, "description", "bare")
        rows.append(GeneratedQA("description", None, render_description(facts, rng),
                                DESCRIPTION_GENERATOR))
    return rows
