"""Versioned instruction pools for caption and grounding rows, and referring expressions.

Ingested caption and grounding datasets give the *answer* (a caption, a phrase and its box)
but not the instruction; the builder draws one from a small pool. The draw is a pure
function of the build seed and the row's identity (sha256, no RNG state), so a build is
deterministic. Any change to a pool is a new :data:`POOL_VERSION` (recorded in the
manifest as ``prompt_pools``).

Placeholders: ``{expr}`` is replaced by the referring expression; ``<box>`` stands for the
row's ``bbox`` (geometry is data: the trainer renders it in its model's convention).
"""

from __future__ import annotations

import hashlib

__all__ = [
    "POOL_VERSION",
    "CAPTION_PROMPTS",
    "GROUNDING_PROMPTS",
    "REGION_PROMPTS",
    "POOLS",
    "pick",
    "relation_expressions",
]

POOL_VERSION = "prompts-1.0"

CAPTION_PROMPTS: tuple[str, ...] = (
    "Describe the image briefly.",
    "Write a short caption for this image.",
    "What does this picture show? Answer in one sentence.",
    "Give a one-sentence description of the image.",
    "Summarize the content of the image in a sentence.",
    "Provide a brief caption for the photo.",
)
"""Caption rows: user ``<image>`` + one of these; the assistant gives the caption."""

GROUNDING_PROMPTS: tuple[str, ...] = (
    "Where is {expr} in the image? Answer with its bounding box.",
    "Locate {expr} in the image.",
    "Give the bounding box of {expr}.",
    "Find {expr} and output its box.",
    "Which region of the image contains {expr}?",
)
"""Expression -> box rows: the assistant turn is ``<box>``."""

REGION_PROMPTS: tuple[str, ...] = (
    "What is in the region <box>?",
    "Describe the object in <box> briefly.",
    "Give a short description of the region <box>.",
    "What does the area <box> show?",
    "Name what you see inside <box>.",
)
"""Box -> expression rows (region captioning): the assistant gives the expression."""

POOLS: dict[str, tuple[str, ...]] = {
    "caption": CAPTION_PROMPTS,
    "grounding": GROUNDING_PROMPTS,
    "region": REGION_PROMPTS,
}


def pick(pool: str, seed: int, *key: object) -> str:
    """The prompt of ``pool`` for the row identified by ``key`` under build ``seed``."""
    prompts = POOLS[pool]
    h = hashlib.sha256("\x1f".join(str(k) for k in (POOL_VERSION, pool, seed, *key)).encode()).digest()
    return prompts[int.from_bytes(h[:8], "big") % len(prompts)]


_ORDINALS = ("first", "second", "third")
MIN_SEPARATION = 0.05
"""Box centres closer than this (fraction of the image width) make left/right ambiguous."""


def relation_expressions(category: str, centres_x: list[float]) -> list[str | None]:
    """Referring expressions for the boxes of one category, by horizontal position.

    One box: ``"the car"``. Two: ``"the left car"`` / ``"the right car"``. Three or more:
    ``"the leftmost car"``, ``"the rightmost car"``, ``"the middle car"`` (three) or
    ``"the second car from the left"``
    (or from the right, whichever side is nearer; up to the third). A box whose centre is
    within :data:`MIN_SEPARATION` of a neighbour's, or too deep in a row of boxes to name,
    gets None: no expression is better than an ambiguous one.

    Args:
        category: class name (``car``).
        centres_x: box centres, x normalised to [0, 1] in the upright frame.
    """
    n = len(centres_x)
    if n == 1:
        return [f"the {category}"]
    order = sorted(range(n), key=lambda i: centres_x[i])
    out: list[str | None] = [None] * n
    for rank, i in enumerate(order):
        x = centres_x[i]
        neighbours = [centres_x[order[r]] for r in (rank - 1, rank + 1) if 0 <= r < n]
        if any(abs(x - v) < MIN_SEPARATION for v in neighbours):
            continue
        if n == 2:
            out[i] = f"the {'left' if rank == 0 else 'right'} {category}"
        elif rank == 0:
            out[i] = f"the leftmost {category}"
        elif rank == n - 1:
            out[i] = f"the rightmost {category}"
        else:
            from_left, from_right = rank, n - 1 - rank
            if n == 3:
                out[i] = f"the middle {category}"
                continue
            if from_left == from_right and n > 3:
                continue  # the middle of a long row: no short unambiguous name
            if min(from_left, from_right) >= len(_ORDINALS):
                continue
            if from_left <= from_right:
                out[i] = f"the {_ORDINALS[from_left]} {category} from the left"
            else:
                out[i] = f"the {_ORDINALS[from_right]} {category} from the right"
    return out
