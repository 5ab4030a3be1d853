"""Point-guided text generators.

A generator turns one target of a resolved scene and a point on it into question/answer
pairs. Generators are offline and deterministic (a seed in, the same text out) and every
row records which generator and version wrote it (the ``generator`` field, e.g.
``templates-1.0/reasoning/count``).

Signature shared by every generator::

    generate(scene: ResolvedScene, target: ResolvedInstance, point: tuple[float, float],
             *, seed: int) -> list[GeneratedQA]

``point`` is (x, y) normalised to [0, 1] in the stored upright frame. Text never contains
coordinates. A ``question`` of None makes a description row whose user content is
``<image><point>`` alone (the rows stage 2 trains on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from owl_data.ingest.geometry import ResolvedInstance, ResolvedScene

__all__ = [
    "GENERATOR_VERSION",
    "REASONING_FAMILIES",
    "GeneratedQA",
    "GeneratorConfig",
    "generate",
]

GENERATOR_VERSION = "templates-1.0"
"""Name and version of the template generators, the prefix of every ``generator`` field."""

REASONING_FAMILIES: tuple[str, ...] = (
    "relation", "count", "road_side", "nearer", "surface", "advice",
)
"""Complex-reasoning families of :mod:`owl_data.generators.reasoning`."""


@dataclass(frozen=True)
class GeneratedQA:
    """One generated question/answer pair about the target at a point.

    Attributes:
        kind: ``description`` or ``reasoning``.
        question: the question text (no ``<image>``/``<point>`` placeholders), or None.
        answer: the assistant's answer.
        generator: ``<name>-<version>/<kind>[/<family>]``.
    """

    kind: Literal["description", "reasoning"]
    question: str | None
    answer: str
    generator: str


@dataclass(frozen=True)
class GeneratorConfig:
    """What the template generators emit per point.

    Attributes:
        description_with_question: emit a description row whose question is drawn from a
            small pool ("What is this?"...).
        description_no_question: also emit the same description with ``question=None``
            (user content ``<image><point>``: the rows stage 2 trains on).
        max_reasoning: at most this many reasoning rows per point (0 disables them).
        families: the reasoning families allowed, a subset of :data:`REASONING_FAMILIES`.
    """

    description_with_question: bool = True
    description_no_question: bool = True
    max_reasoning: int = 3
    families: tuple[str, ...] = REASONING_FAMILIES

    def __post_init__(self) -> None:
        """Raises FieldError (``"GeneratorConfig field <name>=<value> is invalid: ..."``)."""
        from owl_data.errors import check_field_types, require

        check_field_types(self, what=_WHAT, skip=("families",))
        require(self.max_reasoning >= 0, "max_reasoning", self.max_reasoning,
                "use an integer >= 0 (0 disables reasoning rows)", what=_WHAT)
        fams = self.families
        require(isinstance(fams, (tuple, list)), "families", fams,
                f"use a tuple of names from {', '.join(REASONING_FAMILIES)}", what=_WHAT)
        object.__setattr__(self, "families", tuple(fams))
        unknown = [f for f in self.families if f not in REASONING_FAMILIES]
        require(not unknown, "families", self.families,
                f"unknown {unknown}; choose from {', '.join(REASONING_FAMILIES)}", what=_WHAT)
        require(len(set(self.families)) == len(self.families), "families", self.families,
                "remove the duplicates", what=_WHAT)


_WHAT = "GeneratorConfig field"


def generate(
    scene: "ResolvedScene",
    target: "ResolvedInstance",
    point: tuple[float, float],
    *,
    seed: int,
    config: GeneratorConfig | None = None,
) -> list[GeneratedQA]:
    """Description and reasoning rows for one point on one target (template generators).

    Args:
        scene: the resolved scene the target belongs to.
        target: the instance the point lies on (not a crowd region).
        point: (x, y) normalised to [0, 1] in the stored upright frame. The facts depend
            on the target only, so every point on one target describes the same object.
        seed: chooses templates, questions and which reasoning families are asked; the
            facts never depend on it.
        config: what to emit; :class:`GeneratorConfig` defaults when None.

    Returns:
        The description rows (with a question, then without, as configured) followed by
        up to ``config.max_reasoning`` reasoning rows.

    Raises:
        ValueError: the point is not in [0, 1] or the target is a crowd region.
    """
    from owl_data.generators import reasoning, scene_facts, templates

    cfg = config if config is not None else GeneratorConfig()
    x, y = (float(v) for v in point)
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise ValueError(f"point={point!r}: must be normalised (x, y) in [0, 1]")
    if target.source.crowd:
        raise ValueError(f"target {target.instance!r} is a crowd region: never a target")
    nb = None if scene_facts.is_area(target) else scene_facts.nearest_neighbour(scene, target)
    rows = templates.describe(scene, target, seed=seed, config=cfg, neighbour=nb)
    rows += reasoning.reason(scene, target, seed=seed, config=cfg, neighbour=nb)
    return rows
