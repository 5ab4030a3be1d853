"""Colour names of instances: the **colour** rule of :mod:`owl_data.generators.scene_facts`.

A perceptual namer: every pixel of the object's interior is converted to CIELAB (sRGB, D65,
``skimage.color.rgb2lab``) and classified into one of the eleven basic colour terms of
Berlin and Kay (1969), :data:`BASIC_TERMS`; the interior then votes. The name is stated only
when the vote is clear (:func:`name_from_terms`), otherwise it is None and the generators say
nothing about colour.

**Interior** (:func:`interior_pixels`): the visible mask, cropped to the box, eroded by
``ERODE_PX`` (2) pixels with a 3x3 square structuring element (``scipy.ndimage.binary_erosion``,
pixels outside the crop count as background), so the boundary pixels, which mix the object
with its background and are where masks are least accurate, do not vote. Box-only instances
(no mask): the central half of the box (a quarter of the width and height off each side).

**Voters**: the interior pixels in raster order (row by row, left to right); when there are
more than ``MAX_VOTERS`` (4096), every k-th of them, ``k = ceil(N / MAX_VOTERS)``, starting with
the first: a regular sample that bounds the cost of large regions (road, sky) and estimates a
share to about +-0.8% (one standard deviation at 60%); objects up to 4096 interior pixels vote
with every pixel.

**Pixel terms** (:func:`pixel_terms`), with ``L*`` in [0, 100], chroma
``C* = hypot(a*, b*)`` and hue angle ``h = atan2(b*, a*)`` in degrees [0, 360):

* shadow: ``L* < SHADOW_L`` (12) is *black* whatever its chroma: too dark for its hue to be
  read (a shadow votes for no hue);
* highlight: ``L* >= HIGHLIGHT_L`` (88) with ``C* < HIGHLIGHT_C`` (20) is *white* (a specular
  highlight or a washed-out patch votes for no hue);
* achromatic: ``C* < ACHROMATIC_C`` (12) is named by lightness: *black* below ``BLACK_L`` (30),
  *white* from ``WHITE_L`` (72), else *gray*;
* chromatic, by hue sector: red ``[345, 50)``, orange ``[50, 80)``, yellow ``[80, 110)``, green
  ``[110, 200)``, blue ``[200, 310)``, purple ``[310, 345)``; then by lightness: a red or purple
  hue with ``L* >= PINK_L`` (56) is *pink*; an orange or yellow hue with ``L* < BROWN_L`` (50)
  is *brown*.

The sector edges put the sRGB primaries and their mixes where English speakers name them
(Lab hue of sRGB red 40 deg, orange (255, 128, 0) 67, yellow 102, green 136, cyan 196,
blue 306, magenta 328); a dark red (maroon) stays red, a dark orange or yellow is brown.

**Vote** (:func:`name_from_terms`) over the voters, shares of all voters:
one term with a share ``>= DOMINANT_SHARE`` (0.6) is the colour; else when the two largest
shares are each ``>= PAIR_MIN_SHARE`` (0.25) and together ``>= PAIR_SHARE`` (0.8), the colour is
both, the larger first (``"red and white"``); else None. An empty interior (an object thinner
than 5 pixels) gives None.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_erosion
from skimage.color import rgb2lab

from owl_data.generators.regions import box_pixels
from owl_data.ingest.geometry import ResolvedInstance, ResolvedScene

__all__ = ["BASIC_TERMS", "ERODE_PX", "MAX_VOTERS", "SHADOW_L", "HIGHLIGHT_L", "HIGHLIGHT_C", "ACHROMATIC_C", "BLACK_L",
           "WHITE_L", "PINK_L", "BROWN_L", "HUE_SECTORS", "DOMINANT_SHARE", "PAIR_MIN_SHARE", "PAIR_SHARE",
           "pixel_terms", "name_from_terms", "rgb_colour_name", "interior_mask", "interior_pixels",
           "colour_of"]

BASIC_TERMS: tuple[str, ...] = ("black", "white", "gray", "red", "orange", "yellow", "green", "blue", "purple",
                                "pink", "brown")
"""The eleven basic colour terms of Berlin and Kay; :func:`pixel_terms` returns indices into it."""

ERODE_PX = 2
MAX_VOTERS = 4096
SHADOW_L = 12.0
HIGHLIGHT_L = 88.0
HIGHLIGHT_C = 20.0
ACHROMATIC_C = 12.0
BLACK_L = 30.0
WHITE_L = 72.0
PINK_L = 56.0
BROWN_L = 50.0
HUE_SECTORS: tuple[tuple[float, str], ...] = (
    (50.0, "red"), (80.0, "orange"), (110.0, "yellow"), (200.0, "green"), (310.0, "blue"), (345.0, "purple"),
    (360.0, "red"),
)
"""(upper hue edge in degrees, term): a hue belongs to the first sector whose edge exceeds it."""
DOMINANT_SHARE = 0.6
PAIR_MIN_SHARE = 0.25
PAIR_SHARE = 0.8

_T = {t: i for i, t in enumerate(BASIC_TERMS)}
_EDGES = np.array([e for e, _ in HUE_SECTORS])
_SECTOR_TERM = np.array([_T[t] for _, t in HUE_SECTORS], dtype=np.int8)
_STRUCT = np.ones((3, 3), dtype=bool)


def pixel_terms(rgb: np.ndarray) -> np.ndarray:
    """Basic colour term of each pixel (rules in the module docstring).

    Args:
        rgb: (N, 3) uint8 sRGB pixels.

    Returns:
        (N,) int8 indices into :data:`BASIC_TERMS`.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 2 or rgb.shape[1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"pixel_terms wants (N, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    if rgb.shape[0] == 0:
        return np.zeros(0, dtype=np.int8)
    lab = rgb2lab(rgb[:, None, :])[:, 0, :]
    L, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    C = np.hypot(a, b)
    h = np.degrees(np.arctan2(b, a)) % 360.0
    term = _SECTOR_TERM[np.minimum(np.searchsorted(_EDGES, h, side="right"), len(_EDGES) - 1)]
    warm = (term == _T["orange"]) | (term == _T["yellow"])
    term = np.where(warm & (L < BROWN_L), _T["brown"], term)
    rosy = (term == _T["red"]) | (term == _T["purple"])
    term = np.where(rosy & (L >= PINK_L), _T["pink"], term)
    grey = np.where(L < BLACK_L, _T["black"], np.where(L >= WHITE_L, _T["white"], _T["gray"]))
    term = np.where(C < ACHROMATIC_C, grey, term)
    term = np.where((L >= HIGHLIGHT_L) & (C < HIGHLIGHT_C), _T["white"], term)
    term = np.where(L < SHADOW_L, _T["black"], term)
    return term.astype(np.int8)


def name_from_terms(terms: np.ndarray) -> str | None:
    """The vote of the module docstring over (N,) term indices: one term, two, or None."""
    n = terms.shape[0]
    if n == 0:
        return None
    share = np.bincount(terms.astype(np.intp), minlength=len(BASIC_TERMS)) / n
    order = np.argsort(-share, kind="stable")
    first, second = order[0], order[1]
    if share[first] >= DOMINANT_SHARE:
        return BASIC_TERMS[first]
    if share[second] >= PAIR_MIN_SHARE and share[first] + share[second] >= PAIR_SHARE:
        return f"{BASIC_TERMS[first]} and {BASIC_TERMS[second]}"
    return None


def rgb_colour_name(rgb: tuple[float, float, float] | np.ndarray) -> str:
    """The basic colour term of one sRGB colour (0-255 per channel)."""
    px = np.clip(np.round(np.asarray(rgb, dtype=np.float64)), 0, 255).astype(np.uint8).reshape(1, 3)
    return BASIC_TERMS[int(pixel_terms(px)[0])]


def interior_mask(scene: ResolvedScene, inst: ResolvedInstance) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """The pixels that vote, as a window of the frame.

    Returns:
        ``(c1, r1, c2, r2)``, half-open frame columns and rows of the window, and its
        (r2 - r1, c2 - c1) bool mask: the visible mask inside the box eroded by
        :data:`ERODE_PX`, or for a box-only instance the central half of the box (all True).
    """
    c1, r1, c2, r2 = box_pixels(scene, inst)
    if inst.mask is not None:
        (x0, y0), (h, w) = inst.offset, inst.mask.shape
        m = inst.mask if (c1, r1, c2, r2) == (x0, y0, x0 + w, y0 + h) else inst.window(c1, r1, c2, r2)
        if m.size:
            m = binary_erosion(m, structure=_STRUCT, iterations=ERODE_PX, border_value=0)
        return (c1, r1, c2, r2), m
    dc, dr = (c2 - c1) // 4, (r2 - r1) // 4
    win = (c1 + dc, r1 + dr, c2 - dc, r2 - dr)
    return win, np.ones((win[3] - win[1], win[2] - win[0]), dtype=bool)


def interior_pixels(scene: ResolvedScene, inst: ResolvedInstance) -> np.ndarray:
    """(N, 3) uint8 RGB of the pixels that vote: the :func:`interior_mask` pixels in raster
    order, every k-th when there are more than :data:`MAX_VOTERS` (module docstring); N may be 0."""
    (c1, r1, c2, r2), m = interior_mask(scene, inst)
    rows, cols = np.nonzero(m)
    k = -(-rows.shape[0] // MAX_VOTERS)
    if k > 1:
        rows, cols = rows[::k], cols[::k]
    return scene.pixels[r1 + rows, c1 + cols]


def colour_of(scene: ResolvedScene, inst: ResolvedInstance) -> str | None:
    """The colour of ``inst`` by the vote of the module docstring (``"red"``, ``"red and white"``),
    or None when no term dominates or the interior is empty. Memoised in ``scene.cache``."""
    key = ("colour", id(inst))
    if key not in scene.cache:
        scene.cache[key] = name_from_terms(pixel_terms(interior_pixels(scene, inst)))
    return scene.cache[key]
