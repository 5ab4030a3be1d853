"""The shortest distance between two instance masks, on their boundaries instead of the frame.

The **neighbour** rule of :mod:`owl_data.generators.scene_facts` measures the gap between two
masks as the shortest Euclidean distance between their pixel centres. That distance is
``sqrt(s)`` for an integer ``s`` (the squared offsets of two pixels), and this module returns
``s`` itself, so the caller takes the same square root a distance transform would
(``scipy.ndimage.distance_transform_edt`` gives exactly ``sqrt(float(s))``).

Why boundaries suffice: when two masks share no pixel, a closest pair (a, b) has a pixel
a' one step from a towards b (along the axis of the larger offset) that is closer to b, so
a' is not in a's mask: a is a boundary pixel (one of its 4 neighbours lies outside the mask),
and likewise b. Overlapping masks are at distance 0. The search is pruned by boxes: the
squared distance from a boundary pixel to the other mask's box bounds its distance to that
mask from below, and any one pair bounds the answer from above, so only pixels whose bound
is within that pair's distance are compared (all pairs when few, a KD-tree when many).
Everything is integer arithmetic on (row, column) pixel coordinates of the upright frame.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from owl_data.ingest.geometry import ResolvedInstance, ResolvedScene

__all__ = ["boundary_pixels", "min_squared_distance"]

_BRUTE_PAIRS = 1 << 18
"""Largest number of pixel pairs compared all at once; more go through a KD-tree."""


def boundary_pixels(scene: ResolvedScene, inst: ResolvedInstance) -> np.ndarray:
    """(N, 2) int64 (row, col) frame pixels of the mask with a 4-neighbour outside it (the
    crop's edge counts as outside), in raster order; memoised per scene. Needs a mask."""
    key = ("boundary", id(inst))
    if key not in scene.cache:
        m = inst.mask
        p = np.pad(m, 1)
        inner = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
        pts = np.argwhere(m & ~inner).astype(np.int64)
        pts += np.array([inst.offset[1], inst.offset[0]], np.int64)
        scene.cache[key] = pts
    return scene.cache[key]


def _overlap(a: ResolvedInstance, b: ResolvedInstance) -> bool:
    """Whether the two masks share a pixel (checked on the intersection of their crops)."""
    (ax, ay), (bx, by) = a.offset, b.offset
    c1, r1 = max(ax, bx), max(ay, by)
    c2, r2 = min(ax + a.mask.shape[1], bx + b.mask.shape[1]), min(ay + a.mask.shape[0], by + b.mask.shape[0])
    if c1 >= c2 or r1 >= r2:
        return False
    return bool((a.mask[r1 - ay : r2 - ay, c1 - ax : c2 - ax] & b.mask[r1 - by : r2 - by, c1 - bx : c2 - bx]).any())


def _to_box_sq(pts: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Squared distance (int64) of each (row, col) pixel to the pixel box (r1, c1, r2, c2), inclusive."""
    r1, c1, r2, c2 = box
    dr = np.maximum(np.maximum(r1 - pts[:, 0], pts[:, 0] - r2), 0)
    dc = np.maximum(np.maximum(c1 - pts[:, 1], pts[:, 1] - c2), 0)
    return dr * dr + dc * dc


def _closest_sq(pa: np.ndarray, pb: np.ndarray) -> int:
    """The least squared distance between two non-empty (N, 2) int64 pixel sets."""
    if pa.shape[0] * pb.shape[0] <= _BRUTE_PAIRS:
        d = pa[:, None, :] - pb[None, :, :]
        return int((d * d).sum(axis=2).min())
    small, big = (pa, pb) if pa.shape[0] <= pb.shape[0] else (pb, pa)
    _, idx = cKDTree(big).query(small)  # exact for integer coordinates; the value is recomputed
    d = big[idx] - small
    return int((d * d).sum(axis=1).min())


def min_squared_distance(scene: ResolvedScene, a: ResolvedInstance, b: ResolvedInstance) -> int:
    """The least squared pixel-centre distance between the masks of ``a`` and ``b`` (an int;
    0 when they share a pixel). Both need non-empty masks."""
    if _overlap(a, b):
        return 0
    pa, pb = boundary_pixels(scene, a), boundary_pixels(scene, b)
    box_a = (int(pa[:, 0].min()), int(pa[:, 1].min()), int(pa[:, 0].max()), int(pa[:, 1].max()))
    box_b = (int(pb[:, 0].min()), int(pb[:, 1].min()), int(pb[:, 0].max()), int(pb[:, 1].max()))
    la, lb = _to_box_sq(pa, box_b), _to_box_sq(pb, box_a)
    d = pa[int(np.argmin(la))] - pb[int(np.argmin(lb))]
    upper = int(d @ d)  # one real pair: the answer is at most this
    return _closest_sq(pa[la <= upper], pb[lb <= upper])
