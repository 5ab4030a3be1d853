"""Where an instance lies: its pixel box, and whether it is an area or stands on the ground.

Shared by the fact modules of :mod:`owl_data.generators.scene_facts` (colour, neighbours,
ground contact). Boxes are normalised xyxy in the stored upright frame; pixel edges are
half-open and clipped to the image.
"""

from __future__ import annotations

import math

from owl_data.ingest.geometry import ResolvedInstance, ResolvedScene

__all__ = ["AREA_CATEGORIES", "GROUNDED_CATEGORIES", "box_pixels", "is_area", "is_grounded"]

AREA_CATEGORIES = frozenset({
    "road", "sidewalk", "parking", "rail track", "ground", "building", "wall", "fence",
    "guard rail", "bridge", "tunnel", "vegetation", "terrain", "sky",
})
"""Categories that name a surface or an area rather than an object (described as such)."""

GROUNDED_CATEGORIES = frozenset({
    # Cityscapes
    "person", "rider", "car", "truck", "bus", "caravan", "trailer", "train", "motorcycle",
    "bicycle", "pole",
    # COCO / VOC
    "motorbike", "fire hydrant", "parking meter", "bench", "chair", "couch", "sofa",
    "potted plant", "pottedplant", "dining table", "diningtable", "dog", "cat", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "pedestrian", "bicycle rider",
})
"""Categories whose box bottom is where they touch the ground (used by nearer, surface, road side)."""


def box_pixels(scene: ResolvedScene, inst: ResolvedInstance) -> tuple[int, int, int, int]:
    """The box as integer pixel edges (c1, r1, c2, r2), half-open, clipped, possibly empty."""
    x1, y1, x2, y2 = inst.bbox
    W, H = scene.width, scene.height
    c1 = min(max(int(math.floor(x1 * W)), 0), W)
    r1 = min(max(int(math.floor(y1 * H)), 0), H)
    c2 = min(max(int(math.ceil(x2 * W)), 0), W)
    r2 = min(max(int(math.ceil(y2 * H)), 0), H)
    return c1, r1, c2, r2


def is_area(inst: ResolvedInstance) -> bool:
    """Whether the instance is a surface or area (road, sky...) rather than an object."""
    return inst.kind == "stuff" and inst.category in AREA_CATEGORIES


def is_grounded(category: str) -> bool:
    """Whether objects of ``category`` stand on the ground (their box bottom is the contact)."""
    return category in GROUNDED_CATEGORIES
