"""Complex-reasoning questions about the target at a point, answers computed from annotations.

Each family asks one question whose answer is a fact of
:mod:`owl_data.generators.scene_facts`; a family that cannot state its fact without guessing
(no neighbour, no semantic map, an ambiguous margin) is skipped. Rows carry
``generator = f"{GENERATOR_VERSION}/reasoning/<family>"``.

Families, with the fact they state and the shape of their text (``<subject>`` is "the
object at the point" (people: "the <category> at the point"), "this <category>" or "the
<category> I am looking at"; ``<ref>`` is
"the nearest <category>" naming the nearest other object, or "the nearest other
<category>" when it shares the target's category; ``<It>`` is "It", or "The <category>"
when the target is a person (``person``, ``rider``, ``pedestrian``: people are never "it")):

* ``relation`` (:func:`scene_facts.relation` to :func:`scene_facts.nearest_neighbour`):
  "Is <subject> to the left or to the right of <ref>?" -> "<It> is to the left of <ref>." |
  "... to the right of <ref>."; when the vertical offset dominates: "Is <subject> above or
  below <ref>?" -> "<It> is above <ref>." | "<It> is below <ref>."
* ``count`` (:func:`scene_facts.count_same_category`, so skipped when any instance of the
  category is under ``COUNT_MIN_PIXELS`` visible pixels): "How many <plural> like this one
  are visible?" | "How many <plural> can be seen, including this one?" -> "Just 1: it is
  the only <category> in view." (people: "Just 1: the <category> is the only one in view.")
  | "<n> <plural> are visible, this one included." (n in digits).
* ``road_side`` (:func:`scene_facts.road_side`): "Which side of the road is <subject> on?"
  -> "<It> is on the left side of the road." | "... right side ...".
* ``nearer`` (:func:`scene_facts.nearer` against the nearest neighbour): "Is <subject>
  nearer to the camera or farther away than <ref>?" -> "<It> is nearer to the camera than
  <ref>." | "<It> is farther from the camera than <ref>."
* ``surface`` (:func:`scene_facts.surface_under`): "Is <subject> on the road or on the
  sidewalk?" -> "<It> is on the road." | "<It> is on the sidewalk."
* ``advice``: a pedestrian's or a driver's caution, looked up by category group and the
  computed surface (:data:`ADVICE`); it mentions "road" or "sidewalk" only when
  :func:`scene_facts.surface_under` says so. Questions: "What should a pedestrian keep in
  mind about <subject>?" | "What should a driver watch out for with <subject>?" Only for
  street scenes (``scene.semantic`` is not None) and targets of the street vocabulary
  (:data:`STREET_CATEGORIES`: vehicles, people, riders and cycles, traffic lights and signs,
  poles, and the road and sidewalk areas); skipped for anything else (a bottle in an
  indoor COCO photo gets no street advice).

Which families a point gets: the configured families in an order drawn from the seed,
the first ``max_reasoning`` that apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np

from owl_data.generators import GENERATOR_VERSION, GeneratedQA, GeneratorConfig
from owl_data.generators import scene_facts as sf
from owl_data.generators.templates import _UNSET, plural, rng_for
from owl_data.ingest.geometry import ResolvedInstance, ResolvedScene

__all__ = ["ADVICE", "STREET_CATEGORIES", "FAMILY_FUNCTIONS", "reasoning_generator", "family_of", "reason"]

VEHICLES = frozenset({"car", "truck", "bus", "caravan", "trailer", "train", "motorcycle", "motorbike"})
PEOPLE = frozenset({"person", "pedestrian"})
CYCLES = frozenset({"rider", "bicycle", "bicycle rider"})
WEARERS = frozenset({"person", "rider", "pedestrian"})  # referred to as "the <category>", never "it"
SIGNALS = frozenset({"traffic light", "traffic sign", "pole"})
STREET_CATEGORIES = VEHICLES | PEOPLE | CYCLES | SIGNALS | frozenset({"road", "sidewalk"})
"""Categories the advice family speaks about (road and sidewalk as areas only)."""

# (group, surface or None) -> {role: advice}; looked up with the computed surface first,
# then with None. Groups: see _group().
ADVICE: dict[tuple[str, str | None], dict[str, str]] = {
    ("vehicle", "road"): {
        "pedestrian": "It is on the road and may move at any moment: check for it before crossing.",
        "driver": "It is on the road: keep a safe distance and watch for it braking or turning.",
    },
    ("vehicle", "sidewalk"): {
        "pedestrian": "It is on the sidewalk: walk around it with care, it may move.",
        "driver": "It is on the sidewalk and may pull out into the road: watch for it.",
    },
    ("vehicle", None): {
        "pedestrian": "Vehicles may move at any moment: check for it before crossing.",
        "driver": "Keep a safe distance from it: it may move off or stop suddenly.",
    },
    ("person", "road"): {
        "pedestrian": "Someone is on the road: traffic may have to swerve around them.",
        "driver": "A person is on the road: slow down and be ready to stop.",
    },
    ("person", "sidewalk"): {
        "pedestrian": "Someone is on the sidewalk: leave them room to pass.",
        "driver": "A pedestrian on the sidewalk may step into the road: watch them.",
    },
    ("person", None): {
        "pedestrian": "People can change direction suddenly: leave them room to pass.",
        "driver": "People can move unpredictably: slow down near them.",
    },
    ("cycle", None): {
        "pedestrian": "Cyclists move fast: check before stepping into their path.",
        "driver": "Cyclists can swerve: give them a wide berth when passing.",
    },
    ("traffic light", None): {
        "pedestrian": "Watch the signal: cross only when it allows.",
        "driver": "Watch the signal: drive on only when it allows.",
    },
    ("traffic sign", None): {
        "pedestrian": "Check the sign: it may concern pedestrians too.",
        "driver": "Read the sign: it may set rules for this stretch of road.",
    },
    ("pole", None): {
        "pedestrian": "It is a fixed obstacle: don't walk into it.",
        "driver": "It is a fixed obstacle at the side of the road: keep clear of it.",
    },
    ("road", None): {
        "pedestrian": "This is the road: look both ways for traffic before stepping onto it.",
        "driver": "Stay in your lane and watch for people crossing.",
    },
    ("sidewalk", None): {
        "pedestrian": "This is the sidewalk, the place to walk: stay on it away from traffic.",
        "driver": "This is for pedestrians: don't drive or park on it.",
    },
}
_ADVICE_QUESTIONS = {
    "pedestrian": "What should a pedestrian keep in mind about {}?",
    "driver": "What should a driver watch out for with {}?",
}


def reasoning_generator(family: str) -> str:
    """The ``generator`` field of a row of ``family``."""
    return f"{GENERATOR_VERSION}/reasoning/{family}"


def family_of(generator: str) -> str | None:
    """The family of a reasoning row's ``generator`` field, None for other rows."""
    prefix = f"{GENERATOR_VERSION}/reasoning/"
    return generator[len(prefix):] if generator.startswith(prefix) else None


@dataclass
class _Context:
    """One target's facts, each computed at most once."""

    scene: ResolvedScene
    target: ResolvedInstance
    seed: int

    def rng(self, family: str) -> np.random.Generator:
        return rng_for(self.seed, "reasoning", family)

    known_neighbour: object = _UNSET

    @cached_property
    def neighbour(self) -> sf.Neighbour | None:
        if sf.is_area(self.target):
            return None
        if self.known_neighbour is not _UNSET:
            return self.known_neighbour
        return sf.nearest_neighbour(self.scene, self.target)

    @cached_property
    def surface(self) -> str | None:
        return sf.surface_under(self.scene, self.target)

    def subject(self, rng: np.random.Generator) -> str:
        cat = self.target.category
        if sf.is_area(self.target):
            return "this area" if cat not in ("road", "sidewalk") else f"this {cat}"
        at = f"the {cat} at the point" if cat in WEARERS else "the object at the point"  # no "object" for people
        opts = (at, f"this {cat}", f"the {cat} I am looking at")
        return opts[int(rng.integers(len(opts)))]

    def it(self) -> str:
        """The target as the subject of an answer: "It", or "The <category>" for people."""
        cat = self.target.category
        return f"The {cat}" if cat in WEARERS and not sf.is_area(self.target) else "It"

    def neighbour_ref(self) -> str:
        cat = self.neighbour.instance.category
        return f"the nearest other {cat}" if cat == self.target.category else f"the nearest {cat}"


def _relation(c: _Context) -> GeneratedQA | None:
    nb = c.neighbour
    if nb is None or nb.relation is None:
        return None
    rng, ref = c.rng("relation"), c.neighbour_ref()
    subj = c.subject(rng)
    if nb.relation in ("left of", "right of"):
        q = f"Is {subj} to the left or to the right of {ref}?"
        a = f"{c.it()} is to the {nb.relation.split()[0]} of {ref}."
    else:
        q = f"Is {subj} above or below {ref}?"
        a = f"{c.it()} is {nb.relation} {ref}."
    return GeneratedQA("reasoning", q, a, reasoning_generator("relation"))


def _count(c: _Context) -> GeneratedQA | None:
    n = sf.count_same_category(c.scene, c.target)
    if n is None or sf.is_area(c.target):
        return None
    rng, cat = c.rng("count"), c.target.category
    q = (f"How many {plural(cat)} like this one are visible?",
         f"How many {plural(cat)} can be seen, including this one?")[int(rng.integers(2))]
    if n > 1:
        a = f"{n} {plural(cat)} are visible, this one included."
    elif cat in WEARERS:
        a = f"Just 1: the {cat} is the only one in view."
    else:
        a = f"Just 1: it is the only {cat} in view."
    return GeneratedQA("reasoning", q, a, reasoning_generator("count"))


def _road_side(c: _Context) -> GeneratedQA | None:
    side = sf.road_side(c.scene, c.target)
    if side is None:
        return None
    q = f"Which side of the road is {c.subject(c.rng('road_side'))} on?"
    return GeneratedQA("reasoning", q, f"{c.it()} is on the {side} side of the road.",
                       reasoning_generator("road_side"))


def _nearer(c: _Context) -> GeneratedQA | None:
    nb = c.neighbour
    if nb is None:
        return None
    which = sf.nearer(c.scene, c.target, nb.instance)
    if which is None:
        return None
    ref = c.neighbour_ref()
    q = f"Is {c.subject(c.rng('nearer'))} nearer to the camera or farther away than {ref}?"
    a = (f"{c.it()} is nearer to the camera than {ref}." if which == "nearer"
         else f"{c.it()} is farther from the camera than {ref}.")
    return GeneratedQA("reasoning", q, a, reasoning_generator("nearer"))


def _surface(c: _Context) -> GeneratedQA | None:
    if c.surface is None:
        return None
    q = f"Is {c.subject(c.rng('surface'))} on the road or on the sidewalk?"
    return GeneratedQA("reasoning", q, f"{c.it()} is on the {c.surface}.", reasoning_generator("surface"))


def _group(target: ResolvedInstance) -> str | None:
    """The advice group of a street-vocabulary target, None for any other."""
    cat = target.category
    if sf.is_area(target):
        return cat if cat in ("road", "sidewalk") else None
    if cat in VEHICLES:
        return "vehicle"
    if cat in PEOPLE:
        return "person"
    if cat in CYCLES:
        return "cycle"
    if cat in SIGNALS:
        return cat
    return None


def _advice(c: _Context) -> GeneratedQA | None:
    if c.scene.semantic is None:  # not a street scene (COCO, VOC...): no street advice
        return None
    group = _group(c.target)
    if group is None:
        return None
    table = ADVICE.get((group, c.surface)) or ADVICE[(group, None)]
    rng = c.rng("advice")
    role = ("pedestrian", "driver")[int(rng.integers(2))]
    q = _ADVICE_QUESTIONS[role].format(c.subject(rng))
    return GeneratedQA("reasoning", q, table[role], reasoning_generator("advice"))


FAMILY_FUNCTIONS: dict[str, Callable[[_Context], GeneratedQA | None]] = {
    "relation": _relation,
    "count": _count,
    "road_side": _road_side,
    "nearer": _nearer,
    "surface": _surface,
    "advice": _advice,
}


def reason(
    scene: ResolvedScene, target: ResolvedInstance, *, seed: int, config: GeneratorConfig,
    neighbour=_UNSET,
) -> list[GeneratedQA]:
    """Up to ``config.max_reasoning`` reasoning rows, families in a seed-drawn order.

    ``neighbour`` may pass :func:`scene_facts.nearest_neighbour` already computed (None
    meaning "no neighbour").
    """
    if config.max_reasoning == 0 or not config.families:
        return []
    ctx = _Context(scene, target, seed, neighbour)
    order = rng_for(seed, "reasoning", "order").permutation(len(config.families))
    rows: list[GeneratedQA] = []
    for k in order:
        row = FAMILY_FUNCTIONS[config.families[int(k)]](ctx)
        if row is not None:
            rows.append(row)
            if len(rows) >= config.max_reasoning:
                break
    return rows
