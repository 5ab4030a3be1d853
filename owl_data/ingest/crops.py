"""Mask crops: a bool (h, w) array and the (x0, y0) of its top-left pixel in a larger frame.

Instances keep their masks as crops of their bounding boxes, so the work on an instance is
proportional to its area, not to the frame's. Offsets are ints: column x0, row y0.
"""

from __future__ import annotations

import numpy as np

from owl_data.ingest.orientation import ORIENTATIONS, transform_mask

__all__ = ["mask_bbox", "renumber", "transform_crop", "tight_crop", "window"]


def mask_bbox(mask: np.ndarray, offset: tuple[int, int] = (0, 0),
              size: tuple[int, int] | None = None) -> tuple[float, float, float, float] | None:
    """Normalised xyxy box of a bool mask (pixel edges, continuous), None if empty.

    ``mask`` is (h, w), its top-left at column ``offset[0]``, row ``offset[1]`` of a frame of
    ``size`` (W, H); by default the mask is the whole frame.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    W, H = size if size is not None else mask.shape[::-1]
    x0, y0 = offset
    return ((cols[0] + x0) / W, (rows[0] + y0) / H, (cols[-1] + 1 + x0) / W, (rows[-1] + 1 + y0) / H)


def transform_crop(mask: np.ndarray, offset: tuple[int, int], orientation: int,
                   raw: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """A crop of a raw-frame mask turned upright: (upright crop (a view), its offset).

    Args:
        mask: (h, w) crop whose top-left is column ``offset[0]``, row ``offset[1]`` of the raw
            (W, H) frame ``raw``.
        orientation: EXIF orientation (:data:`~owl_data.ingest.orientation.ORIENTATIONS`).

    Returns:
        The crop as :func:`transform_mask` turns it, and the (x0, y0) of its top-left in the
        upright frame: the same pixels as turning the full mask.
    """
    swap, flip_x, flip_y = ORIENTATIONS.get(orientation, ORIENTATIONS[1])
    (x0, y0), (h, w), (W, H) = offset, mask.shape, raw
    if swap:
        x0, y0, w, h, W, H = y0, x0, h, w, H, W
    if flip_x:
        x0 = W - x0 - w
    if flip_y:
        y0 = H - y0 - h
    return transform_mask(mask, orientation), (int(x0), int(y0))


def tight_crop(mask: np.ndarray, offset: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]] | None:
    """(contiguous copy of the mask's bounding box, its offset) of a (mask, offset) crop;
    None when the mask is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    r0, c0 = int(rows[0]), int(cols[0])
    crop = np.ascontiguousarray(mask[r0 : int(rows[-1]) + 1, c0 : int(cols[-1]) + 1])
    return crop, (offset[0] + c0, offset[1] + r0)


def window(mask: np.ndarray, offset: tuple[int, int], c1: int, r1: int, c2: int, r2: int) -> np.ndarray:
    """(r2 - r1, c2 - c1) bool: a crop's pixels on frame columns [c1, c2) and rows [r1, r2),
    False where the window lies outside the crop (a new array)."""
    out = np.zeros((max(r2 - r1, 0), max(c2 - c1, 0)), bool)
    x0, y0 = offset
    h, w = mask.shape
    a1, b1, a2, b2 = max(c1, x0), max(r1, y0), min(c2, x0 + w), min(r2, y0 + h)
    if a1 < a2 and b1 < b2:
        out[b1 - r1 : b2 - r1, a1 - c1 : a2 - c1] = mask[b1 - y0 : b2 - y0, a1 - x0 : a2 - x0]
    return out


def renumber(inst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values ascending, (H, W) labels 1..n): each pixel's value replaced by its rank + 1.

    The same as ``np.unique(inst, return_inverse=True)`` (plus one), found in linear time with
    ``np.bincount`` and a lookup table when the values are small non-negative integers (16-bit
    label maps such as Cityscapes' instanceIds); other maps take ``np.unique``.
    """
    if inst.size and inst.dtype.kind in "iu" and int(inst.min()) >= 0 and int(inst.max()) < 1 << 20:
        flat = inst.ravel()
        uniq = np.flatnonzero(np.bincount(flat))
        lut = np.zeros(int(uniq[-1]) + 1, np.int32)
        lut[uniq] = np.arange(1, uniq.size + 1, dtype=np.int32)
        return uniq.astype(inst.dtype), lut[inst]
    uniq, inverse = np.unique(inst, return_inverse=True)
    return uniq, inverse.reshape(inst.shape) + 1
