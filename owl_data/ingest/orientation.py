"""EXIF orientation (tag 0x0112, EXIF 2.32): one table, and the maps of points and arrays it gives.

The raw frame is the file's pixel grid; the upright frame is what ``PIL.ImageOps.exif_transpose``
shows. Pixels (:func:`transform_mask`) and continuous coordinates (:func:`transform_xy`) are
turned by the same table, :data:`ORIENTATIONS`, so an annotation lands on the pixels it named.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ORIENTATIONS", "upright_size", "transform_xy", "transform_mask"]

ORIENTATIONS: dict[int, tuple[bool, bool, bool]] = {
    # tag: (swap axes, then flip x, flip y)     EXIF 2.32 name
    1: (False, False, False),                   # top-left (upright)
    2: (False, True, False),                    # top-right: mirrored left-right
    3: (False, True, True),                     # bottom-right: rotated 180
    4: (False, False, True),                    # bottom-left: mirrored top-bottom
    5: (True, False, False),                    # left-top: transposed
    6: (True, True, False),                     # right-top: rotated 90 clockwise to view
    7: (True, True, True),                      # right-bottom: transversed
    8: (True, False, True),                     # left-bottom: rotated 90 counter-clockwise to view
}
"""How each EXIF orientation turns the raw frame upright, as ``PIL.ImageOps.exif_transpose``
does: first swap x and y (5..8), then mirror the x and/or y axis of the swapped frame. Any
other value counts as 1. :func:`transform_xy` and :func:`transform_mask` both read this table."""
_UPRIGHT = ORIENTATIONS[1]
_REVERSED, _ALL = slice(None, None, -1), slice(None)


def upright_size(raw: tuple[int, int], orientation: int) -> tuple[int, int]:
    """(W, H) of the upright frame of a raw (W, H) frame: swapped for orientations 5..8."""
    return (raw[1], raw[0]) if ORIENTATIONS.get(orientation, _UPRIGHT)[0] else raw


def transform_xy(
    x: np.ndarray | float, y: np.ndarray | float, orientation: int, raw_w: int, raw_h: int
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Map continuous pixel coordinates of the raw frame to the upright frame.

    Same mapping as ``PIL.ImageOps.exif_transpose`` applies to pixels (EXIF 2.32 spec), from
    :data:`ORIENTATIONS`: e.g. orientation 6 maps (x, y) to (H - y, x).
    """
    swap, flip_x, flip_y = ORIENTATIONS.get(orientation, _UPRIGHT)
    u, v, w, h = (y, x, raw_h, raw_w) if swap else (x, y, raw_w, raw_h)
    return (w - u if flip_x else u), (h - v if flip_y else v)


def transform_mask(mask: np.ndarray, orientation: int) -> np.ndarray:
    """Apply the EXIF orientation to an (H, W[, C]) array as PIL's exif_transpose does
    (:data:`ORIENTATIONS`); returns a view (``mask`` itself for orientation 1)."""
    swap, flip_x, flip_y = ORIENTATIONS.get(orientation, _UPRIGHT)
    out = np.swapaxes(mask, 0, 1) if swap else mask
    if flip_x or flip_y:
        out = out[_REVERSED if flip_y else _ALL, _REVERSED if flip_x else _ALL]
    return out
