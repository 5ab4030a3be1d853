"""An independent restatement of the colour rule of :mod:`owl_data.generators.colour`, for tests.

Nothing of ``owl_data.generators`` is called: the thresholds are imported as data, CIELAB is
computed with the plain CIE formulas (sRGB companding, the sRGB-to-XYZ matrix of Poynton (6 digits, as scikit-image), D65 white
0.95047, 1, 1.08883), the 2 px erosion as "every pixel within Chebyshev distance 2 is in the
mask" (a 5x5 window, outside the crop counting as background), and the pixel rule with
``np.select`` in the docstring's order of precedence (shadow, highlight, achromatic, hue).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from owl_data.generators import colour as C  # thresholds only (module constants)

TERMS = ("black", "white", "gray", "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown")

_M = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]])
_WHITE = np.array([0.95047, 1.0, 1.08883])


def lab(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 sRGB -> (N, 3) float CIELAB (D65)."""
    c = rgb.astype(np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    t = (lin @ _M.T) / _WHITE
    d = 6.0 / 29.0
    f = np.where(t > d ** 3, np.cbrt(t), t / (3 * d * d) + 4.0 / 29.0)
    return np.stack([116.0 * f[:, 1] - 16.0, 500.0 * (f[:, 0] - f[:, 1]), 200.0 * (f[:, 1] - f[:, 2])], axis=1)


def terms(rgb: np.ndarray) -> np.ndarray:
    """(N,) term names of (N, 3) uint8 pixels, by the rule of the colour module's docstring."""
    L, a, b = lab(rgb).T
    chroma = np.hypot(a, b)
    hue = np.degrees(np.arctan2(b, a)) % 360.0
    sector = np.select([hue < 50, hue < 80, hue < 110, hue < 200, hue < 310, hue < 345],
                       ["red", "orange", "yellow", "green", "blue", "purple"], "red")
    sector = np.where(np.isin(sector, ["red", "purple"]) & (L >= C.PINK_L), "pink", sector)
    sector = np.where(np.isin(sector, ["orange", "yellow"]) & (L < C.BROWN_L), "brown", sector)
    grey = np.select([L < C.BLACK_L, L >= C.WHITE_L], ["black", "white"], "gray")
    return np.select([L < C.SHADOW_L, (L >= C.HIGHLIGHT_L) & (chroma < C.HIGHLIGHT_C), chroma < C.ACHROMATIC_C],
                     ["black", "white", grey], sector)


def eroded(mask: np.ndarray, px: int = 2) -> np.ndarray:
    """``mask`` eroded by a (2 px + 1) square window; pixels beyond the array are background."""
    k = 2 * px + 1
    padded = np.pad(mask, px, constant_values=False)
    return sliding_window_view(padded, (k, k)).all(axis=(2, 3))


def voters(pixels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N, 3) pixels of the (eroded) frame ``mask`` that vote: all of them in raster order, or
    every k-th (k = ceil(N / MAX_VOTERS)) when there are more than ``MAX_VOTERS``."""
    flat = pixels.reshape(-1, 3)[np.flatnonzero(mask.ravel())]
    k = max(1, int(np.ceil(flat.shape[0] / C.MAX_VOTERS)))
    return flat[::k]


def shares(rgb: np.ndarray) -> dict[str, float]:
    """Share of each term among (N, 3) pixels (N > 0)."""
    names, counts = np.unique(terms(rgb), return_counts=True)
    return {str(n): c / rgb.shape[0] for n, c in zip(names, counts)}


def allowed(stated: str, share: dict[str, float]) -> bool:
    """Whether ``stated`` ("red" or "red and white") is what the vote may say for ``share``."""
    parts = stated.split(" and ")
    if len(parts) == 1:
        return share.get(parts[0], 0.0) >= C.DOMINANT_SHARE
    s = [share.get(p, 0.0) for p in parts]
    return (max(share.values()) < C.DOMINANT_SHARE and min(s) >= C.PAIR_MIN_SHARE
            and sum(s) >= C.PAIR_SHARE)
