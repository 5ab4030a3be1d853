"""Colour names of instances: the **colour** rule of :mod:`owl_data.generators.scene_facts`.

The per-channel median RGB of the visible mask (box-only instances: the central half of the
box), named with an HSV palette (:func:`rgb_colour_name`; thresholds in the
``scene_facts`` module docstring).
"""

from __future__ import annotations

import colorsys

import numpy as np

from owl_data.generators.regions import box_pixels
from owl_data.ingest.geometry import ResolvedInstance, ResolvedScene

__all__ = ["rgb_colour_name", "region_pixels", "colour_of"]


def rgb_colour_name(rgb: tuple[float, float, float] | np.ndarray) -> str:
    """Name one RGB colour (0-255 per channel) with the palette of the module docstring."""
    r, g, b = (float(c) / 255.0 for c in rgb)
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    if v < 0.2:
        return "black"
    if s < 0.2:
        if v >= 0.85:
            return "white"
        return "silver" if v >= 0.6 else "gray"
    deg = h * 360.0
    if deg >= 345.0 or deg < 15.0:
        name = "red"
    elif deg < 40.0:
        name = "orange"
    elif deg < 70.0:
        name = "yellow"
    elif deg < 170.0:
        name = "green"
    elif deg < 260.0:
        name = "blue"
    elif deg < 300.0:
        name = "purple"
    else:
        name = "pink"
    if name in ("red", "orange") and v < 0.5:
        return "brown"
    return name


def region_pixels(scene: ResolvedScene, inst: ResolvedInstance) -> np.ndarray:
    """(N, 3) uint8 RGB pixels the colour is read from: the mask, or the box's central half."""
    c1, r1, c2, r2 = box_pixels(scene, inst)
    if inst.mask is not None:  # the crop's pixels inside the box
        (x0, y0), (h, w) = inst.offset, inst.mask.shape
        m = inst.mask if (c1, r1, c2, r2) == (x0, y0, x0 + w, y0 + h) else inst.window(c1, r1, c2, r2)
        return scene.pixels[r1:r2, c1:c2][m]
    dc, dr = (c2 - c1) // 4, (r2 - r1) // 4
    patch = scene.pixels[r1 + dr : r2 - dr, c1 + dc : c2 - dc]
    if patch.size == 0:
        patch = scene.pixels[r1:r2, c1:c2]
    return patch.reshape(-1, 3)


def colour_of(scene: ResolvedScene, inst: ResolvedInstance) -> str | None:
    """Colour name of the per-channel median of :func:`region_pixels`; None if no pixel."""
    key = ("colour", id(inst))
    if key not in scene.cache:
        px = region_pixels(scene, inst)
        scene.cache[key] = None if px.shape[0] == 0 else rgb_colour_name(np.median(px, axis=0))
    return scene.cache[key]
