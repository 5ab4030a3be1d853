"""Facts about one target of a resolved scene, computed from the annotations alone.

Every function here is pure: it reads a :class:`~owl_data.ingest.geometry.ResolvedScene` (pixels,
masks, boxes, optional Cityscapes label-id map) and returns a small value (a word, a count,
a relation) or None when the fact cannot be stated without guessing. The template
generators (:mod:`~owl_data.generators.templates`, :mod:`~owl_data.generators.reasoning`)
only put these values into words, so every generated answer can be recomputed from the
scene with the rules below. Thresholds are module constants.

Frames and units: boxes are normalised xyxy in the stored upright frame (x right, y down);
distances between objects are measured in pixels and divided by the image diagonal, so a
rule means the same at every resolution. Cityscapes label ids follow
``cityscapesscripts.helpers.labels`` (road 7, sidewalk 8).

The rules live in one place, here, and the code by concept: colours in
:mod:`~owl_data.generators.colour`, ground contact (road side, nearer, surface) in
:mod:`~owl_data.generators.ground`, pixel boxes and area/grounded categories in
:mod:`~owl_data.generators.regions`, the rest (size, position, neighbours, relations, counts,
ranks) in this module, which re-exports them all.

Rules in one place:

* **colour** (:func:`colour_of`; full rule and thresholds in :mod:`~owl_data.generators.colour`):
  perceptual, in CIELAB (``skimage.color.rgb2lab``, sRGB D65). The pixels that vote are the
  visible mask inside the box eroded by 2 px (box-only instances: the box's central half).
  Each is named with one of the eleven basic terms of Berlin and Kay (black, white, gray,
  red, orange, yellow, green, blue, purple, pink, brown): ``L* < 12`` is black (a shadow
  votes for no hue), ``L* >= 88`` with ``C* < 20`` white (a highlight), ``C* < 12`` by
  lightness (black < 30 <= gray < 72 <= white), else by hue angle (red [345, 50), orange
  [50, 80), yellow [80, 110), green [110, 200), blue [200, 310), purple [310, 345)), a
  red or purple hue with ``L* >= 56`` being pink and an orange or yellow one with ``L* < 50``
  brown. The colour is the term holding at least 60% of the voting pixels, else the two
  largest when each holds at least 25% and together at least 80% ("red and white", larger
  first), else None: **no colour is stated** (the descriptions then name the object without
  one, :func:`~owl_data.generators.templates.coloured_noun`).
* **size** (:func:`size_class`): the share of the frame the object takes, never its size in
  the world (a far bus and a near bicycle can take the same share): the visible area
  fraction (:attr:`ResolvedInstance.area`: visible mask pixels / (H x W); for a box-only
  instance, the box's area / the frame's) below ``TINY_SHARE`` (1%) is ``tiny``, below
  ``SMALL_SHARE`` (10%) ``small``, below ``LARGE_SHARE`` (30%) ``sizeable``, else ``large``;
  the templates say it as a share of the view ("it takes up a small part of the view"), never
  as "a small car" or "is large".
* **frame position** (:func:`frame_position`): the box centre's x in thirds (left, centre,
  right) and y in thirds (top, middle, bottom).
* **neighbour** (:func:`nearest_neighbour`): the non-crowd ``thing`` instance (other than the
  target) with the smallest gap to the target, the gap being, when both have masks, the
  shortest Euclidean distance between a pixel centre of one mask and one of the other, minus
  one pixel (so touching or overlapping masks give 0; the value a Euclidean distance
  transform gives, computed on the masks' boundaries: :mod:`~owl_data.generators.distance`),
  else the distance between the two boxes; gaps above ``NEIGHBOUR_MAX_GAP`` of the diagonal
  mean "no neighbour"; ties go to the lower index in ``scene.instances``.
* **relation** (:func:`relation`): where the target is relative to the other object, from
  box centres in pixels: the axis with the larger offset wins; "left of"/"right of" or
  "above"/"below". None when both offsets are below ``RELATION_MARGIN`` of the diagonal.
* **count** (:func:`count_same_category`): non-crowd thing instances of the target's
  category, the target included; None when a crowd region of that category exists, or when
  any of those instances (the target included) has fewer than ``COUNT_MIN_PIXELS`` visible
  pixels (:func:`visible_pixels`: area fraction x width x height): a count that includes
  slivers of a few pixels (a pole split by occluders, a far sign) is not what anyone sees.
  The same condition (:func:`countable`, over the instances of the target's category and
  kind) decides whether a rank phrase may name the total ("of the three cars").
* **road side** (:func:`road_side`): road pixels (label 7) in the rows within
  ``ROAD_BAND`` of the image height of the target's bottom row; the road's middle is the
  midpoint of their leftmost and rightmost columns; the target is on the left (right)
  side when its box centre is left (right) of that middle by at least
  ``ROAD_SIDE_MARGIN`` of the width, else None. Needs a semantic map and a grounded target.
* **nearer** (:func:`nearer`): ground contact is the box bottom y; the larger one is nearer
  the camera. None when the two differ by less than ``NEARER_MARGIN`` of the height or
  either category is not :func:`is_grounded`.
* **surface** (:func:`surface_under`): the contact columns of the mask are those whose
  lowest mask pixel lies in the bottom ``CONTACT_FRACTION`` of the box height (box-only:
  every column of the box, bottom at the box bottom); the band is the
  ``max(SURFACE_BAND_MIN, round(SURFACE_BAND * H))`` rows just below that lowest pixel in
  each contact column (1 row up to H = 374, 4 rows at Cityscapes' 1024). The answer is road
  (7) or sidewalk (8) when that label holds more than ``SURFACE_MAJORITY`` (2/3) of the
  band's pixels, else None. The band is thin on purpose: what an object stands on is the
  ground its base touches, and a curb-side sidewalk strip under a pole or a pedestrian can be
  a single row wide at low resolution (the default synthetic scenes: one row of 256, the
  road right below it); a deeper band reads past the curb into the road. The band only
  absorbs a few rows of label noise at the contact; a split band says nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from owl_data.generators.colour import colour_of, interior_pixels, rgb_colour_name
from owl_data.generators.ground import (CONTACT_FRACTION, NEARER_MARGIN, ROAD_BAND, ROAD_ID, ROAD_SIDE_MARGIN,
                                        SIDEWALK_ID, SURFACE_BAND, SURFACE_BAND_MIN, SURFACE_MAJORITY, nearer,
                                        road_side, surface_under)
from owl_data.generators.distance import min_squared_distance
from owl_data.generators.regions import AREA_CATEGORIES, GROUNDED_CATEGORIES, box_pixels, is_area, is_grounded
from owl_data.ingest.geometry import ResolvedInstance, ResolvedScene

__all__ = [
    "TINY_SHARE",
    "SMALL_SHARE",
    "LARGE_SHARE",
    "SIZE_CLASSES",
    "NEIGHBOUR_MAX_GAP",
    "RELATION_MARGIN",
    "ROAD_BAND",
    "ROAD_SIDE_MARGIN",
    "NEARER_MARGIN",
    "SURFACE_BAND",
    "SURFACE_BAND_MIN",
    "SURFACE_MAJORITY",
    "COUNT_MIN_PIXELS",
    "CONTACT_FRACTION",
    "ROAD_ID",
    "SIDEWALK_ID",
    "AREA_CATEGORIES",
    "GROUNDED_CATEGORIES",
    "Neighbour",
    "rgb_colour_name",
    "interior_pixels",
    "colour_of",
    "size_class",
    "frame_position",
    "is_area",
    "is_grounded",
    "others",
    "gap",
    "neighbours",
    "nearest_neighbour",
    "relation",
    "visible_pixels",
    "countable",
    "count_same_category",
    "rank_from_left",
    "road_side",
    "nearer",
    "surface_under",
]

TINY_SHARE = 0.01
"""Share of the frame (visible area fraction) below which an object takes a "tiny" part of it."""
SMALL_SHARE = 0.10
"""Share of the frame below which an object takes a "small" part of it (from ``TINY_SHARE``)."""
LARGE_SHARE = 0.30
"""Share of the frame from which an object takes a "large" part of it (below: "sizeable")."""
SIZE_CLASSES = ("tiny", "small", "sizeable", "large")
"""The values of :func:`size_class`, smallest share first."""
NEIGHBOUR_MAX_GAP = 0.25
"""Largest gap (fraction of the image diagonal) at which another object counts as next to it."""
RELATION_MARGIN = 0.01
"""Centre offsets (fraction of the diagonal) below which no spatial relation is stated."""
COUNT_MIN_PIXELS = 24
"""Visible pixels every same-category instance needs for a count (or a rank's total) to be
stated; the point sampler's default ``min_area_px``."""


def size_class(area: float) -> str | None:
    """The share class of the frame an object takes, from its visible area fraction.

    Args:
        area: visible area / frame area, in [0, 1] (:attr:`ResolvedInstance.area`: mask
            pixels / (H x W), or the normalised box's area for a box-only instance).

    Returns:
        ``tiny`` (area < ``TINY_SHARE`` = 0.01), ``small`` (< ``SMALL_SHARE`` = 0.10),
        ``sizeable`` (< ``LARGE_SHARE`` = 0.30) or ``large``; None when ``area`` is not > 0
        (no area known, e.g. a point-only target). A class describes the share of the view,
        not the object's size in the world. Example: a 40x30 px car in a 640x480 photo
        takes 1200 / 307200 = 0.39% -> ``tiny``; the road under a Cityscapes frame, 35% ->
        ``large``.
    """
    if not area > 0:
        return None
    if area < TINY_SHARE:
        return "tiny"
    if area < SMALL_SHARE:
        return "small"
    return "sizeable" if area < LARGE_SHARE else "large"


def frame_position(bbox: tuple[float, float, float, float]) -> tuple[str, str]:
    """(horizontal, vertical) third of the box centre: left/centre/right, top/middle/bottom."""
    cx, cy = (bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0
    h = "left" if cx < 1 / 3 else ("right" if cx >= 2 / 3 else "centre")
    v = "top" if cy < 1 / 3 else ("bottom" if cy >= 2 / 3 else "middle")
    return h, v


def others(scene: ResolvedScene, target: ResolvedInstance) -> list[tuple[int, ResolvedInstance]]:
    """(index, instance) of every non-crowd thing instance of the scene except the target."""
    return [
        (i, o) for i, o in enumerate(scene.instances)
        if o is not target and o.instance != target.instance and o.kind == "thing"
        and not o.source.crowd
    ]


def _diag(scene: ResolvedScene) -> float:
    return math.hypot(scene.width, scene.height)


def _box_gap_px(scene: ResolvedScene, a: ResolvedInstance, b: ResolvedInstance) -> float:
    W, H = scene.width, scene.height
    dx = max(0.0, (b.bbox[0] - a.bbox[2]) * W, (a.bbox[0] - b.bbox[2]) * W)
    dy = max(0.0, (b.bbox[1] - a.bbox[3]) * H, (a.bbox[1] - b.bbox[3]) * H)
    return math.hypot(dx, dy)


def _masked(inst: ResolvedInstance) -> bool:
    """Whether the instance has a mask with at least one pixel."""
    return inst.mask is not None and bool(inst.mask.any())


def _mask_gap(scene: ResolvedScene, a: ResolvedInstance, b: ResolvedInstance) -> float:
    """Mask-to-mask gap as a fraction of the diagonal: sqrt of the least squared pixel-centre
    distance (the float a distance transform gives) minus one pixel, at least 0 (memoised
    per scene, for either order of the pair)."""
    key = ("gap_sq",) + tuple(sorted((id(a), id(b))))
    if key not in scene.cache:
        scene.cache[key] = min_squared_distance(scene, a, b)
    return max(math.sqrt(float(scene.cache[key])) - 1.0, 0.0) / _diag(scene)


def gap(scene: ResolvedScene, a: ResolvedInstance, b: ResolvedInstance) -> float:
    """Gap between two instances as a fraction of the image diagonal (0 when touching).

    Mask to mask when both have non-empty masks (shortest distance between pixel centres
    minus one pixel, so adjacent pixels give 0), box to box otherwise.
    """
    if _masked(a) and _masked(b):
        return _mask_gap(scene, a, b)
    return _box_gap_px(scene, a, b) / _diag(scene)


@dataclass(frozen=True)
class Neighbour:
    """Another object near the target.

    Attributes:
        index: its index in ``scene.instances``.
        instance: the instance.
        gap: gap to the target as a fraction of the image diagonal.
        relation: where the *target* is relative to it (:func:`relation`), or None.
    """

    index: int
    instance: ResolvedInstance
    gap: float
    relation: str | None


def neighbours(scene: ResolvedScene, target: ResolvedInstance) -> list[Neighbour]:
    """Objects within ``NEIGHBOUR_MAX_GAP`` of the target, nearest first (memoised per scene)."""
    key = ("neighbours", id(target))
    if key not in scene.cache:
        scene.cache[key] = _neighbours(scene, target)
    return list(scene.cache[key])


def _close(scene: ResolvedScene, target: ResolvedInstance) -> list[tuple[float, int, ResolvedInstance]]:
    """(box gap / diagonal, index, instance) of every other object whose box gap is within
    ``NEIGHBOUR_MAX_GAP``, by box gap then index. The box gap is a lower bound of the gap."""
    diag = _diag(scene)
    close = [(_box_gap_px(scene, target, o) / diag, i, o) for i, o in others(scene, target)]
    return sorted((c for c in close if c[0] <= NEIGHBOUR_MAX_GAP), key=lambda c: (c[0], c[1]))


def _neighbours(scene: ResolvedScene, target: ResolvedInstance) -> list[Neighbour]:
    """Objects within ``NEIGHBOUR_MAX_GAP`` of the target, nearest first (ties: lower index).

    Only objects whose box gap (a lower bound) is within the limit are measured by :func:`gap`.
    """
    found = []
    for _, i, o in _close(scene, target):
        g = gap(scene, target, o)
        if g <= NEIGHBOUR_MAX_GAP:
            found.append(Neighbour(i, o, g, relation(scene, target, o)))
    found.sort(key=lambda n: (n.gap, n.index))
    return found


def nearest_neighbour(scene: ResolvedScene, target: ResolvedInstance) -> Neighbour | None:
    """The first of :func:`neighbours`, or None when no object is close enough (memoised).

    Measures objects in order of box gap and stops at the first whose box gap (a lower
    bound of its gap) exceeds the best gap found, so only the few nearest are measured.
    """
    key = ("nearest", id(target))
    if key not in scene.cache:
        best: Neighbour | None = None
        for lower, i, o in _close(scene, target):
            if best is not None and lower > best.gap + 1e-9:  # the margin absorbs float rounding
                break
            g = gap(scene, target, o)
            if g <= NEIGHBOUR_MAX_GAP and (best is None or (g, i) < (best.gap, best.index)):
                best = Neighbour(i, o, g, relation(scene, target, o))
        scene.cache[key] = best
    return scene.cache[key]


def relation(scene: ResolvedScene, target: ResolvedInstance, other: ResolvedInstance) -> str | None:
    """Where ``target`` is relative to ``other``: ``left of``, ``right of``, ``above``, ``below``.

    Box centres in pixels; the axis with the larger absolute offset decides (ties: the
    horizontal axis). None when both offsets are below ``RELATION_MARGIN`` of the diagonal.
    """
    W, H = scene.width, scene.height
    dx = ((target.bbox[0] + target.bbox[2]) - (other.bbox[0] + other.bbox[2])) / 2.0 * W
    dy = ((target.bbox[1] + target.bbox[3]) - (other.bbox[1] + other.bbox[3])) / 2.0 * H
    margin = RELATION_MARGIN * _diag(scene)
    if abs(dx) < margin and abs(dy) < margin:
        return None
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def visible_pixels(scene: ResolvedScene, inst: ResolvedInstance) -> float:
    """Visible pixels of an instance: its visible area fraction x width x height."""
    return inst.area * scene.width * scene.height


def countable(scene: ResolvedScene, target: ResolvedInstance) -> bool:
    """Whether every non-crowd instance of the target's category and kind, the target
    included, has at least ``COUNT_MIN_PIXELS`` visible pixels (so a number of them may be
    stated). The 1e-6 tolerance only absorbs float rounding of ``area``."""
    same = [
        o for o in scene.instances
        if o.category == target.category and o.kind == target.kind and not o.source.crowd
    ]
    return all(visible_pixels(scene, o) >= COUNT_MIN_PIXELS - 1e-6 for o in same + [target])


def count_same_category(scene: ResolvedScene, target: ResolvedInstance) -> int | None:
    """Non-crowd thing instances with the target's category, the target included.

    None when the target is not a thing, when a crowd region of the same category makes
    the number unknowable, or when one of them is under ``COUNT_MIN_PIXELS`` visible pixels
    (:func:`countable`).
    """
    if target.kind != "thing":
        return None
    same = [o for o in scene.instances if o.category == target.category]
    if any(o.source.crowd for o in same):
        return None
    if not countable(scene, target):
        return None
    n = sum(1 for o in same if o.kind == "thing" and o is not target and o.instance != target.instance)
    return n + 1


def rank_from_left(scene: ResolvedScene, target: ResolvedInstance) -> tuple[int, int]:
    """(rank, total): the target's 1-based rank from the left among non-crowd instances of
    its category and kind, by box centre x (ties by centre y, then index)."""
    peers = [
        (i, o) for i, o in enumerate(scene.instances)
        if o.category == target.category and o.kind == target.kind and not o.source.crowd
        and (o is target or o.instance != target.instance)
    ]
    if not any(o is target for _, o in peers):
        peers.append((len(scene.instances), target))
    keys = sorted(
        ((o.bbox[0] + o.bbox[2], o.bbox[1] + o.bbox[3], i), o) for i, o in peers
    )
    rank = next(k for k, (_, o) in enumerate(keys) if o is target) + 1
    return rank, len(keys)
