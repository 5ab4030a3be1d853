"""Geometry in the stored frame: EXIF orientation, rasterisation, normalisation, validation.

Conventions (DESIGN.md "Geometry is data"): points and boxes are stored normalised to
[0, 1], x to the right, y down, in the frame of the stored upright image. Coordinates are
continuous: pixel column j has its centre at (j + 0.5) / W. The frame the annotations are in
(the raw pixel grid before EXIF orientation, or the upright image every viewer shows) is
chosen per source by its ``?frame=upright|raw|auto`` option
(:func:`owl_data.ingest.frame.annotation_frame`);
annotations in the raw frame are turned with the pixels, upright ones are taken as they are.

Masks are kept as crops of their bounding boxes, with the crop's ``offset`` in the upright
frame (:mod:`owl_data.ingest.crops`).

Masks are rasterised with pycocotools (the COCO reference implementation) after every
coordinate has been checked: on absurd coordinates that native code can run for minutes or
crash the process (FACTS.md), so :func:`check_coords` runs first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from owl_data.errors import RejectError
from owl_data.ingest.numbers import NumberError, finite_float, pixel_int
from owl_data.ingest.crops import mask_bbox, tight_crop, transform_crop, window
from owl_data.ingest.orientation import transform_mask, transform_xy, upright_size
from owl_data.records import RLE, Box, Geometry, Instance, MaskArray, Polygons

__all__ = [
    "GeometryError",
    "ResolvedInstance",
    "ResolvedScene",
    "transform_xy",
    "transform_mask",
    "transform_crop",
    "resolve_instance",
    "mask_bbox",
    "decode_rle_counts",
]

# How far outside the image (in image sizes) a vertex may lie before it is absurd.
ABSURD_MARGIN = 1.0


class GeometryError(RejectError):
    """An annotation that cannot be used; ``reason`` is the reject reason."""


@dataclass
class ResolvedInstance:
    """An instance in the stored upright frame.

    Attributes:
        source: the :class:`~owl_data.records.Instance` it came from.
        mask: (h, w) bool crop of the visible mask in the upright frame, or None (box-only
            sources); :func:`resolve_instance` crops it to the mask's bounding box. Any crop
            that lies inside the frame is valid (a full (H, W) mask with offset (0, 0) too).
        bbox: (x1, y1, x2, y2) normalised to [0, 1], clipped to the image, x1 < x2, y1 < y2.
        point: annotated point (x, y) normalised, or None.
        area: visible area as a fraction of the image (mask pixels / (H*W), or box area).
        offset: (x0, y0) ints: the crop's top-left pixel is column x0, row y0 of the frame.
    """

    source: Instance
    mask: np.ndarray | None
    bbox: tuple[float, float, float, float]
    point: tuple[float, float] | None = None
    area: float = 0.0
    offset: tuple[int, int] = (0, 0)

    def window(self, c1: int, r1: int, c2: int, r2: int) -> np.ndarray:
        """(r2 - r1, c2 - c1) bool: the mask on frame columns [c1, c2) and rows [r1, r2)
        (False outside the crop; all False for a box-only instance)."""
        if self.mask is None:
            return np.zeros((max(r2 - r1, 0), max(c2 - c1, 0)), bool)
        return window(self.mask, self.offset, c1, r1, c2, r2)

    def full_mask(self, width: int, height: int) -> np.ndarray | None:
        """The (height, width) bool mask in the whole upright frame, or None (box-only)."""
        return None if self.mask is None else self.window(0, 0, width, height)

    @property
    def instance(self) -> str:
        return self.source.instance

    @property
    def category(self) -> str:
        return self.source.category

    @property
    def kind(self) -> str:
        return self.source.kind


@dataclass
class ResolvedScene:
    """A decoded image with its annotations in the stored upright frame.

    Attributes:
        pixels: (H, W, 3) uint8 RGB of the stored upright image.
        width, height: size of the stored upright image in pixels.
        instances: resolved instances (targets and context, crowd regions included).
        semantic: (H, W) uint8 Cityscapes label ids in the upright frame, or None.
        cache: memo of per-instance facts (colour, neighbours) computed on this scene;
            facts depend on the scene only, so every point on a target reuses them.
    """

    pixels: np.ndarray
    width: int
    height: int
    instances: list[ResolvedInstance] = field(default_factory=list)
    semantic: np.ndarray | None = None
    cache: dict = field(default_factory=dict, repr=False, compare=False)


# --- validation and rasterisation ----------------------------------------------------------


def check_coords(values: np.ndarray, w: int, h: int, what: str) -> None:
    """Raise GeometryError for non-finite or absurd (far outside the frame) coordinates.

    ``values`` is an (N, 2) array of (x, y) pixels in a frame of size (w, h).
    """
    if values.size == 0:
        raise GeometryError("empty_geometry", what)
    if not np.all(np.isfinite(values)):
        raise GeometryError("non_finite", what)
    mx, my = ABSURD_MARGIN * w, ABSURD_MARGIN * h
    if (values[:, 0].min() < -mx or values[:, 0].max() > w + mx
            or values[:, 1].min() < -my or values[:, 1].max() > h + my):
        raise GeometryError(
            "absurd_coordinates",
            f"{what} reaches ({values[:, 0].min():.4g}..{values[:, 0].max():.4g}, "
            f"{values[:, 1].min():.4g}..{values[:, 1].max():.4g}) on a {w}x{h} frame",
        )


def _polygon_vertices(poly: list[float]) -> np.ndarray:
    """(N, 2) float64 vertices of a flat ``[x1, y1, x2, y2, ...]`` list of JSON numbers."""
    if not isinstance(poly, (list, tuple)):
        raise GeometryError("bad_polygon", f"polygon of type {type(poly).__name__}")
    if len(poly) % 2:
        raise GeometryError("bad_polygon", f"odd coordinate list of length {len(poly)}")
    try:
        arr = np.array([finite_float(v, "polygon coordinate") for v in poly], dtype=np.float64)
    except NumberError as exc:
        raise GeometryError("non_finite" if exc.reason == "non_finite" else "bad_polygon", exc.detail) from None
    return arr.reshape(-1, 2)


def _rasterise_polygons(polys: list[np.ndarray], W: int, H: int) -> np.ndarray:
    from pycocotools import mask as mask_utils

    flat = [p.reshape(-1).astype(np.float64).tolist() for p in polys]
    rles = mask_utils.frPyObjects(flat, H, W)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def decode_rle_counts(counts: str | bytes) -> list[int]:
    """Run lengths of a COCO compressed-RLE string (pycocotools ``rleFrString``, in Python).

    Each count is written in 5-bit groups, least significant first, each character being
    ``48 + group`` with bit 0x20 set on every group but the last; bit 0x10 of the last group
    is the sign (sign-extended); from the fourth count on (index > 2) a count is stored as
    the difference from the count two places before it. Runs alternate 0s and 1s, starting
    with 0s. The runs are returned as decoded, not checked against the frame.

    Raises:
        GeometryError(``bad_rle``): a character outside ``'0'..'o'`` (48..111), a string
            that ends inside a count, or a count longer than 13 groups (64 bits).
    """
    if isinstance(counts, bytes):
        try:
            counts = counts.decode("ascii")
        except UnicodeDecodeError:
            raise GeometryError("bad_rle", "compressed counts are not ASCII") from None
    runs: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise GeometryError("bad_rle", "compressed counts end inside a count")
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                raise GeometryError("bad_rle", f"character {counts[p]!r} at {p} outside '0'..'o'")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if k > 13:
                raise GeometryError("bad_rle", "a count longer than 64 bits")
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return runs


def _rle_mask(rle: dict, frame_w: int, frame_h: int) -> np.ndarray:
    from pycocotools import mask as mask_utils

    size = rle.get("size")
    counts = rle.get("counts")
    if not (isinstance(size, (list, tuple)) and len(size) == 2):
        raise GeometryError("bad_rle", f"size {size!r}")
    try:
        h, w = pixel_int(size[0], "RLE height"), pixel_int(size[1], "RLE width")
    except NumberError as exc:
        raise GeometryError("bad_rle", exc.detail) from None
    if (w, h) != (frame_w, frame_h):
        raise GeometryError("size_mismatch", f"RLE size {w}x{h} on a {frame_w}x{frame_h} frame")
    if isinstance(counts, list):
        if any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in counts) or sum(counts) != h * w:
            raise GeometryError("bad_rle", "uncompressed counts do not cover the frame")
        rle_c = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    elif isinstance(counts, (str, bytes)):
        # pycocotools trusts the string: counts that do not cover the frame leave the rest
        # of its output buffer uninitialised (garbage masks), so the runs are checked first
        runs = decode_rle_counts(counts)
        if any(r < 0 or r >= 1 << 32 for r in runs) or sum(runs) != h * w:
            raise GeometryError("bad_rle", f"compressed counts cover {sum(runs)} pixels, not {h}x{w}")
        rle_c = {"size": [h, w], "counts": counts.encode() if isinstance(counts, str) else counts}
    else:
        raise GeometryError("bad_rle", f"counts of type {type(counts).__name__}")
    try:
        m = mask_utils.decode(rle_c)
    except Exception as exc:  # pycocotools raises bare Exceptions on malformed strings
        raise GeometryError("bad_rle", str(exc)) from None
    if m.shape[:2] != (h, w):
        raise GeometryError("bad_rle", f"decoded {m.shape}")
    return m.astype(bool)


def _polygons_mask(g: Polygons, o: int, declared: tuple[int, int], upright: tuple[int, int]) -> np.ndarray:
    """(H, W) bool upright mask of polygons in the declared frame (checked, then turned by ``o``)."""
    if not g.polygons:
        raise GeometryError("degenerate_polygon", "no polygon")
    verts = [_polygon_vertices(p) for p in g.polygons]
    for v in verts:
        check_coords(v, *declared, "polygon")
        if len({(float(a), float(b)) for a, b in v}) < 3:
            raise GeometryError("degenerate_polygon", f"{len(v)} vertices, fewer than 3 distinct")
    up = []
    for v in verts:
        x, y = transform_xy(v[:, 0], v[:, 1], o, *declared)
        up.append(np.stack([x, y], axis=1))
    return _rasterise_polygons(up, *upright)


def _box_bbox(g: Box, o: int, declared: tuple[int, int],
              upright: tuple[int, int]) -> tuple[float, float, float, float]:
    """Normalised upright xyxy of a pixel box in the declared frame, clipped to the image."""
    uw, uh = upright
    corners = np.array([[g.x1, g.y1], [g.x2, g.y2]], dtype=np.float64)
    check_coords(corners, *declared, "box")
    if g.x2 <= g.x1 or g.y2 <= g.y1:
        raise GeometryError("bad_box", f"x1,y1,x2,y2 = {g.x1},{g.y1},{g.x2},{g.y2} not ordered")
    x, y = transform_xy(corners[:, 0], corners[:, 1], o, *declared)
    x1, x2 = sorted(float(v) for v in x)
    y1, y2 = sorted(float(v) for v in y)
    cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, uw), min(y2, uh)
    if cx2 <= cx1 or cy2 <= cy1:
        raise GeometryError("outside_image", "box lies wholly outside the image")
    return (cx1 / uw, cy1 / uh, cx2 / uw, cy2 / uh)


def _mask_array(g: MaskArray, raw: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """(bool crop, offset) of a MaskArray, checked to be a 2-D crop inside the (W, H) frame
    ``raw`` (the annotation frame's size)."""
    m, off = np.asarray(g.mask, dtype=bool), (0, 0) if g.offset is None else tuple(g.offset)
    if m.ndim != 2 or g.offset is None and m.shape != (raw[1], raw[0]):
        raise GeometryError("size_mismatch", f"mask {m.shape[::-1]} on a {raw} image")
    ok = len(off) == 2 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in off)
    if not ok or min(off) < 0 or off[0] + m.shape[1] > raw[0] or off[1] + m.shape[0] > raw[1]:
        raise GeometryError("size_mismatch", f"mask {m.shape[::-1]} at {off!r} outside a {raw} image")
    return m, (int(off[0]), int(off[1]))


def _region(g: Geometry | None, o: int, declared: tuple[int, int], upright: tuple[int, int]
            ) -> tuple[tuple[np.ndarray, tuple[int, int]] | None, tuple[float, float, float, float] | None]:
    """((upright mask crop, offset) or None, normalised bbox or None) of an instance's region.

    A mask's bbox is that of its pixels; the crop is the mask's bounding box. Every geometry
    (mask arrays included) is in the declared frame and turns by ``o`` (the orientation, or 1
    when annotations are already upright).
    """
    mask, off = None, (0, 0)
    if isinstance(g, Polygons):
        mask = _polygons_mask(g, o, declared, upright)
    elif isinstance(g, RLE):
        mask = transform_mask(_rle_mask(g.rle, *declared), o)
    elif isinstance(g, MaskArray):
        mask, off = transform_crop(*_mask_array(g, declared), o, declared)
    elif isinstance(g, Box):
        return None, _box_bbox(g, o, declared, upright)
    if mask is None:
        return None, None
    crop = tight_crop(mask, off)
    if crop is None:
        raise GeometryError("empty_mask", "no pixel of the image is inside the region")
    return crop, mask_bbox(*crop, size=upright)


def _annotated_point(point: tuple[float, float], g: Geometry | None, o: int, declared: tuple[int, int],
                     upright: tuple[int, int]) -> tuple[float, float]:
    """An annotated pixel point of the declared frame, normalised in the upright frame."""
    uw, uh = upright
    p = np.array([point], dtype=np.float64)
    if not np.all(np.isfinite(p)):
        raise GeometryError("non_finite", "point")
    if isinstance(g, Box) and not (g.x1 <= p[0, 0] <= g.x2 and g.y1 <= p[0, 1] <= g.y2):
        # an annotated point names its object: one outside the object's own box
        # contradicts the annotation, and a row would point at something else
        raise GeometryError(
            "point_outside_target",
            f"point ({p[0, 0]:.4g}, {p[0, 1]:.4g}) outside its box "
            f"({g.x1:.4g}, {g.y1:.4g}, {g.x2:.4g}, {g.y2:.4g})")
    px, py = transform_xy(p[0, 0], p[0, 1], o, *declared)
    if not (0 <= px <= uw and 0 <= py <= uh):
        raise GeometryError("outside_image", f"point ({px:.4g}, {py:.4g}) outside {uw}x{uh}")
    return (min(float(px) / uw, 1.0), min(float(py) / uh, 1.0))


def resolve_instance(
    inst: Instance,
    *,
    declared: tuple[int, int],
    raw: tuple[int, int],
    orientation: int,
    rotate: bool,
) -> ResolvedInstance:
    """Turn an instance's geometry into the stored upright frame.

    Args:
        inst: the instance, geometry (mask arrays included) in pixels of the annotation frame.
        declared: (W, H) of the annotation frame (``AnnotationFrame.size``: the raw size
            when ``rotate``, else the upright size).
        raw: (W, H) of the file's pixel grid.
        orientation: EXIF orientation.
        rotate: True when the annotation frame is the raw frame
            (:attr:`owl_data.ingest.frame.AnnotationFrame.rotate`).

    Raises:
        GeometryError: with the reject reason (``degenerate_polygon``, ``bad_polygon``,
            ``non_finite`` (NaN, infinity, an integer too large for a float), ``bad_rle``,
            ``absurd_coordinates``, ``outside_image``, ``empty_mask``, ``size_mismatch``,
            ``point_outside_target`` (an annotated point outside the instance's own box)...).
    """
    o = orientation if rotate else 1
    upright = upright_size(raw, orientation)
    g: Geometry | None = inst.geometry
    crop, bbox = _region(g, o, declared, upright)
    mask, offset = crop if crop is not None else (None, (0, 0))
    point = None if inst.point is None else _annotated_point(inst.point, g, o, declared, upright)
    if bbox is None:
        if point is None:
            raise GeometryError("no_geometry", "instance has neither region nor point")
        bbox = (point[0], point[1], point[0], point[1])
    if mask is not None:
        area = float(mask.sum()) / float(upright[0] * upright[1])
    else:
        area = (bbox[2] - bbox[0]) * (bbox[3] - bbox[1])
    if not all(math.isfinite(v) for v in bbox):
        raise GeometryError("non_finite", "bbox")
    return ResolvedInstance(source=inst, mask=mask, bbox=bbox, point=point, area=area, offset=offset)
