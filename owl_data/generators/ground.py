"""Ground-contact facts: the **road side**, **nearer** and **surface** rules of
:mod:`owl_data.generators.scene_facts` (Cityscapes label ids: road 7, sidewalk 8).

Each needs a grounded target (:func:`~owl_data.generators.regions.is_grounded`, not an
area); road side and surface also need the scene's semantic label map. Fractions are of
the image height or width, so a rule means the same at every resolution.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from owl_data.generators.regions import box_pixels, is_area, is_grounded
from owl_data.ingest.geometry import ResolvedInstance, ResolvedScene

__all__ = ["ROAD_BAND", "ROAD_SIDE_MARGIN", "NEARER_MARGIN", "SURFACE_BAND", "SURFACE_BAND_MIN",
           "SURFACE_MAJORITY", "CONTACT_FRACTION", "ROAD_ID", "SIDEWALK_ID", "road_side", "nearer",
           "surface_under"]

ROAD_BAND = 0.02
"""Half-height (fraction of image height, at least one row) of the row band used for road side."""
ROAD_SIDE_MARGIN = 0.03
"""Distance (fraction of width) from the road's middle below which no side is stated."""
NEARER_MARGIN = 0.03
"""Difference of box bottoms (fraction of height) below which nearer/farther is not stated."""
SURFACE_BAND = 0.004
"""Height of the band just below the contact (fraction of image height) read for the surface."""
SURFACE_BAND_MIN = 1
"""Smallest band height in rows."""
SURFACE_MAJORITY = Fraction(2, 3)
"""Share of the band's pixels one label must exceed for road/sidewalk to be stated (exact)."""
CONTACT_FRACTION = 0.1
"""Bottom fraction of the box height in which a column's lowest mask pixel makes it a contact column."""

ROAD_ID = 7
SIDEWALK_ID = 8
_SURFACES = {ROAD_ID: "road", SIDEWALK_ID: "sidewalk"}


def _bottom_row(scene: ResolvedScene, inst: ResolvedInstance) -> int:
    """Last pixel row of the instance (mask, else box), clipped to the image."""
    c1, r1, c2, r2 = box_pixels(scene, inst)
    if inst.mask is not None:
        rows = np.flatnonzero(inst.window(c1, r1, c2, r2).any(axis=1))
        if rows.size:
            return int(rows[-1]) + r1
    return min(max(r2 - 1, 0), scene.height - 1)


def _road_ends(scene: ResolvedScene, r1: int, r2: int) -> tuple[int, int] | None:
    """(leftmost, rightmost) column holding road in label-map rows [r1, r2), None when none
    does (memoised per scene: targets standing on the same row share it)."""
    key = ("road_ends", r1, r2)
    if key not in scene.cache:
        cols = np.flatnonzero((scene.semantic[r1:r2] == ROAD_ID).any(axis=0))
        scene.cache[key] = (int(cols[0]), int(cols[-1])) if cols.size else None
    return scene.cache[key]


def road_side(scene: ResolvedScene, target: ResolvedInstance) -> str | None:
    """``left`` or ``right``: the side of the road the target is on (rule in module docstring)."""
    sem = scene.semantic
    if sem is None or is_area(target) or not is_grounded(target.category):
        return None
    H, W = sem.shape
    row = _bottom_row(scene, target)
    half = max(1, int(round(ROAD_BAND * H)))
    ends = _road_ends(scene, max(row - half, 0), min(row + half + 1, H))
    if ends is None:
        return None
    middle = (ends[0] + ends[1] + 1) / 2.0 / W
    cx = (target.bbox[0] + target.bbox[2]) / 2.0
    if abs(cx - middle) < ROAD_SIDE_MARGIN:
        return None
    return "left" if cx < middle else "right"


def nearer(scene: ResolvedScene, target: ResolvedInstance, other: ResolvedInstance) -> str | None:
    """``nearer`` or ``farther``: the target compared with ``other`` by ground contact."""
    if not (is_grounded(target.category) and is_grounded(other.category)):
        return None
    if is_area(target) or is_area(other):
        return None
    d = target.bbox[3] - other.bbox[3]
    if abs(d) < NEARER_MARGIN:
        return None
    return "nearer" if d > 0 else "farther"


def surface_under(scene: ResolvedScene, target: ResolvedInstance) -> str | None:
    """``road`` or ``sidewalk`` under the target (rule in module docstring), else None."""
    sem = scene.semantic
    if sem is None or is_area(target) or not is_grounded(target.category):
        return None
    H, W = sem.shape
    depth = max(SURFACE_BAND_MIN, int(round(SURFACE_BAND * H)))
    c1, r1, c2, r2 = box_pixels(scene, target)
    if target.mask is not None:
        m = target.window(c1, r1, c2, r2)
        cols = np.flatnonzero(m.any(axis=0))
        if cols.size == 0:
            return None
        lowest = m.shape[0] - 1 - np.argmax(m[::-1, :], axis=0)  # lowest mask row per column
        rows = np.flatnonzero(m.any(axis=1))
        top, bottom = int(rows[0]), int(rows[-1])
        reach = max(1, int(math.ceil(CONTACT_FRACTION * (bottom - top + 1))))
        cols = cols[lowest[cols] > bottom - reach]
        starts = {int(c) + c1: int(lowest[c]) + r1 + 1 for c in cols}
    else:
        starts = {c: r2 for c in range(c1, c2)}
    labels = [sem[s : min(s + depth, H), c] for c, s in starts.items() if s < H]
    if not labels:
        return None
    values = np.concatenate(labels)
    if values.size == 0:
        return None
    counts = np.bincount(values.astype(np.int64))
    top_label = int(np.argmax(counts))
    if not int(counts[top_label]) > SURFACE_MAJORITY * int(values.size):
        return None
    return _SURFACES.get(top_label)
