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
from typing import Literal

__all__ = ["GeneratedQA"]


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
