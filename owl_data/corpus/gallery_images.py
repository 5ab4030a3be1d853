"""The gallery's pictures (:mod:`owl_data.corpus.gallery`): thumbnails, and the zoom around each
point: which square of the full-resolution image to show, and the marks drawn on it.

A thumbnail of 320 px makes a 1600x900 DriveLM frame five times smaller: a 20 px traffic light
becomes 4 px, under a 12 px point marker. Beside each thumbnail the gallery
(:mod:`owl_data.corpus.gallery`) therefore shows a square crop of the stored image centred on the
point, at its own pixels (the browser upscales it to the thumbnail's height, ``image-rendering:
pixelated``), in the spirit of Describe Anything's focal crop.

Frames: the crop is in pixels of the stored upright image (x right, y down, origin top-left,
integer pixel edges); the point and box come in normalised [0, 1] coordinates of that image
(DESIGN.md "Corpus layout") and are drawn in the crop's pixel frame, the SVG ``viewBox`` being the
crop itself, so the marks stay exactly over the pixels they name at any display size.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from owl_data.corpus.read import CorpusReader

__all__ = ["ZOOM_FRACTION", "ZOOM_MIN_PX", "ZoomCrop", "zoom_crop", "zoom_overlay", "decode", "write_images"]

ZOOM_FRACTION = 1 / 6
"""Side of the zoom square as a fraction of the image's shorter side (150 px of a 1600x900 frame)."""
ZOOM_MIN_PX = 96
"""Smallest side of the zoom square in image pixels (a small image still shows some context);
an image whose shorter side is below it is cropped to that shorter side."""
GAP_PX = 6
"""Radius (display px) around the point that the crosshair leaves clear, so a small target stays visible."""
ARM_PX = 8
"""Length (display px) of each crosshair arm beyond the gap."""


@dataclass(frozen=True)
class ZoomCrop:
    """A square of the image: columns ``x0 .. x0 + side - 1``, rows ``y0 .. y0 + side - 1``, in pixels."""

    x0: int
    y0: int
    side: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(left, upper, right, lower)`` as Pillow's ``Image.crop`` takes it (right/lower exclusive)."""
        return self.x0, self.y0, self.x0 + self.side, self.y0 + self.side


def zoom_crop(x: float, y: float, width: int, height: int, *, fraction: float = ZOOM_FRACTION,
              min_px: int = ZOOM_MIN_PX) -> ZoomCrop:
    """The zoom square around a normalised point.

    The side is ``max(min_px, round(fraction * min(width, height)))``, at most
    ``min(width, height)``. The square is centred on the point's pixel position
    ``(x * width, y * height)`` (its left edge at ``round(px - side / 2)``) and then shifted, not
    shrunk, to lie inside the image: near an edge the point is off-centre, never outside.

    Args:
        x, y: the point, normalised to [0, 1] in the image's frame.
        width, height: the image's size in pixels (>= 1).

    Raises:
        ValueError: a size below 1 or a point outside [0, 1].

    Example: a point at (0.5, 0.5) of a 1600x900 frame gives side 150, ``ZoomCrop(725, 375, 150)``;
    at (0.99, 0.01) it is clamped to ``ZoomCrop(1450, 0, 150)``.
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size {width}x{height}: both sides must be at least 1 px")
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise ValueError(f"point ({x}, {y}) is not normalised to [0, 1]")
    short = min(width, height)
    side = min(short, max(min_px, round(fraction * short)))
    x0 = min(max(round(x * width - side / 2), 0), width - side)
    y0 = min(max(round(y * height - side / 2), 0), height - side)
    return ZoomCrop(int(x0), int(y0), int(side))


def zoom_overlay(crop: ZoomCrop, x: float, y: float, width: int, height: int,
                 bbox: tuple[float, float, float, float] | None, display_px: int) -> str:
    """SVG marks for a zoom shown at ``display_px`` x ``display_px``: the target box's outline (when
    known, clipped to the square) and a crosshair of four arms that leave a clear disc of
    :data:`GAP_PX` display px around the point (nothing is drawn on the target under it).

    Args:
        crop: the square shown (:func:`zoom_crop`).
        x, y: the point, normalised (clamped to [0, 1], as :func:`write_images` clamps it);
            width, height: the image's size in pixels.
        bbox: the target box ``(x1, y1, x2, y2)`` normalised, or None.
        display_px: the zoom's displayed side in CSS px (scale = ``display_px / crop.side``).
    """
    k = display_px / crop.side  # display px per image px
    cx, cy = _unit(x) * width - crop.x0, _unit(y) * height - crop.y0
    parts = []
    if bbox is not None and len(bbox) == 4:
        x1, y1, x2, y2 = bbox
        parts.append(f'<rect class="box" x="{x1 * width - crop.x0:.2f}" y="{y1 * height - crop.y0:.2f}" '
                     f'width="{(x2 - x1) * width:.2f}" height="{(y2 - y1) * height:.2f}"/>')
    r0, r1 = GAP_PX / k, (GAP_PX + ARM_PX) / k
    arms = "".join(f'M{cx + dx * r0:.2f} {cy + dy * r0:.2f}L{cx + dx * r1:.2f} {cy + dy * r1:.2f}'
                   for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)))
    parts.append(f'<path class="cross-halo" d="{arms}"/><path class="cross" d="{arms}" '
                 f'data-cx="{cx:.2f}" data-cy="{cy:.2f}"/>')
    return (f'<svg viewBox="0 0 {crop.side} {crop.side}" width="{display_px}" height="{display_px}" '
            f'xmlns="http://www.w3.org/2000/svg">' + "".join(parts) + "</svg>")


def _unit(v: float) -> float:
    return min(max(float(v), 0.0), 1.0)


def decode(data: bytes, width: int, height: int) -> Image.Image | None:
    """The stored image as RGB at its full resolution (``width`` x ``height``); None if undecodable."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.size != (width, height):
                im = ImageOps.exif_transpose(im)
            if im.size != (width, height):
                return None
            return im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def write_images(reader: CorpusReader, rows: list[tuple[str, dict[str, Any]]], out: Path, side: int
                 ) -> tuple[dict[str, tuple[int, int]], dict[int, tuple[ZoomCrop, tuple[int, int]]]]:
    """Write ``thumbs/<image_id>.png`` for the rows' images (longer side ``side`` px) and
    ``zooms/<image_id>_<x0>_<y0>_<side>.png`` for each row with a point (the crop of the full image).

    Args:
        reader: the corpus (``images`` table: bytes, width, height of the stored upright image).
        rows: (task, row) with the gallery's columns (``image_id``, ``px``, ``py`` normalised or None).
        out: the gallery folder being written. side: the thumbnails' longer side in px.

    Returns:
        (image_id -> thumbnail (w, h), index in ``rows`` -> (its zoom crop, the full image's
        (w, h))); an image absent from ``images`` or undecodable gets neither. A point outside
        [0, 1] (validate refuses such rows) is clamped onto the image's edge.
    """
    sizes: dict[str, tuple[int, int]] = {}
    zooms: dict[int, tuple[ZoomCrop, tuple[int, int]]] = {}
    points: dict[str, list[int]] = {}  # image_id -> indices of its rows with a point
    for i, (_, r) in enumerate(rows):
        if r["px"] is not None and r["py"] is not None:
            points.setdefault(r["image_id"], []).append(i)
    ids = sorted({r["image_id"] for _, r in rows})
    if not ids:
        return sizes, zooms
    table = reader.read_images(ids, ["image_id", "bytes", "width", "height"]).sort_by("image_id")
    for image_id, data, w, h in zip(*(table.column(c).to_pylist() for c in ("image_id", "bytes", "width", "height"))):
        if image_id in sizes or not re.fullmatch(r"[0-9a-f]{8,128}", image_id) or (rgb := decode(data, w, h)) is None:
            continue
        s = side / max(w, h)
        thumb = rgb.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
        for d in ("thumbs", "zooms"):
            (out / d).mkdir(exist_ok=True)
        thumb.save(out / "thumbs" / f"{image_id}.png", format="PNG")
        sizes[image_id] = thumb.size
        for i in points.get(image_id, []):
            crop = zoom_crop(_unit(rows[i][1]["px"]), _unit(rows[i][1]["py"]), w, h)
            zooms[i] = (crop, (w, h))
            path = out / "zooms" / f"{image_id}_{crop.x0}_{crop.y0}_{crop.side}.png"
            if not path.exists():  # rows sharing a crop share its file
                rgb.crop(crop.box).save(path, format="PNG")
    return sizes, zooms
