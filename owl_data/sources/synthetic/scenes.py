"""Synthetic street scenes drawn by the project, written in the Cityscapes layout.

These scenes are **synthetic**: flat-shaded polygons drawn with numpy and PIL, not
photographs, and no file is downloaded. They exist so the whole pipeline (the real
Cityscapes reader :mod:`owl_data.sources.cityscapes`, point sampling, generators, corpus)
runs end to end without the licensed dataset, and so tests can check occlusion handling
on known geometry.

Layout written under ``root`` (the Cityscapes conventions of cityscapes-dataset.com and
``cityscapesscripts``)::

    leftImg8bit/<split>/<city>/<city>_000000_<frame:06d>_leftImg8bit.png    RGB, 8-bit
    gtFine/<split>/<city>/<stem>_gtFine_labelIds.png                          L, label ids
    gtFine/<split>/<city>/<stem>_gtFine_instanceIds.png                       I;16
    gtFine/<split>/<city>/<stem>_gtFine_polygons.json                         drawing order

with one city per split (:data:`CITIES`: ``synthville`` in train, ``drawburg`` in val) so
the split/group logic is exercised, and as many frames and such a frame size as
:class:`DefaultScenes` says.

Each frame is a randomised street (:func:`owl_data.sources.synthetic.layout.street_layout`: camera,
horizon, road, facades, which objects and where, a mirrored street), so a point's place in
the frame says little about what it is on. Every object is one polygon in pixel
coordinates (x right, y down, integer vertices). Objects are drawn in painter's order (sky,
ground, facades, then cars, people, poles with their lights and signs, and trees from the
farthest to the nearest), and the label and instance maps are the result of that order:
each pixel belongs to the last polygon covering it, so the maps hold the *visible* regions,
exactly what ``cityscapesscripts``' ``json2labelImg`` and ``json2instanceImg`` draw from
the polygons file (both rasterise with ``PIL.ImageDraw.polygon``, as done here). A polygon
of which no pixel stays visible is left out, as Cityscapes annotates only what is seen (and
so is a person of whom mostly the head would show).
Instance values follow Cityscapes: ``class_id * 1000 + k`` with ``k`` counting the objects
of that class in drawing order; stuff and the object classes without instances hold the
plain ``class_id``. Ids and label names come from ``cityscapesscripts.helpers.labels``.

Pixel colours: stuff is its Cityscapes label colour with a vertical shading; cars and
pedestrians are painted in their own body/clothing colour (red, blue, white, black, ...;
within a frame no two cars and no two people share one) so colour naming has something to
find. Objects (cars, people, poles, lights, signs) are lit like a photo (:func:`_lighting`): a
lightness gradient across the object (``LIGHT_GRADIENT``) and a shadow band at its bottom
(``SHADOW_BAND`` of its height at ``SHADOW_FACTOR``), and every pixel gets Gaussian noise
(``NOISE_SIGMA`` levels), all drawn from the frame's generator, so a colour namer must read
the paint through shading and noise. Frame ``k`` of split ``s`` is drawn from ``np.random.default_rng((seed, s, k))``
(train 0, val 1): the files written are byte-identical for a given seed and settings, and
raising a count adds frames without changing the others.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import name2label
from PIL import Image, ImageDraw

from owl_data.errors import require
from owl_data.sources.synthetic.layout import Obj, street_layout
from owl_data.sources.synthetic.palette import (CAR_COLOURS, CAR_PAINTS, CAR_WINDOWS, CLOTHES, CLOTHES_PAINTS, SKIN,
                                                WHEEL)
from owl_data.sources.synthetic.tasks import write_task_files

__all__ = ["COMPLETE", "cached_default_sources", "DEFAULT_SOURCE_NAME", "CITIES", "DRAWING_VERSION", "DefaultScenes",
           "CAR_COLOURS", "CAR_WINDOWS",
           "WHEEL", "CLOTHES", "SKIN", "painted_colours", "write_default_scenes", "write_default_sources"]

DEFAULT_SOURCE_NAME = "cityscapes"

CITIES: tuple[tuple[str, str], ...] = (("train", "synthville"), ("val", "drawburg"))
"""(split, city) of the drawn frames, one city per split."""

DRAWING_VERSION = 3
"""Changes whenever the same seed and settings would draw other scenes (part of the cache name)."""

MAX_FRAMES = 999_999  # frame numbers have six digits
MIN_SIZE, MAX_SIZE = (128, 64), (4096, 4096)


@dataclass(frozen=True)
class DefaultScenes:
    """How many street scenes the embedded default draws, and their frame size.

    Attributes:
        train: frames of the train city (``synthville``), 1..999999.
        val: frames of the val city (``drawburg``), 1..999999.
        width: frame width in pixels, 128..4096.
        height: frame height in pixels, 64..4096.

    Raises:
        ValueError: a value that is not an integer in range (the message names the field).
    """

    train: int = 3
    val: int = 2
    width: int = 512
    height: int = 256

    def __post_init__(self) -> None:
        for name, lo, hi in (("train", 1, MAX_FRAMES), ("val", 1, MAX_FRAMES),
                             ("width", MIN_SIZE[0], MAX_SIZE[0]), ("height", MIN_SIZE[1], MAX_SIZE[1])):
            v = getattr(self, name)
            require(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi, f"default_scenes.{name}", v,
                    f"use an integer in {lo}..{hi}")

    def frames(self, split: str) -> int:
        return {"train": self.train, "val": self.val}[split]

    def cache_name(self, seed: int) -> str:
        """A folder name holding every setting that changes the drawing (and the drawing version)."""
        return f"default-scenes-d{DRAWING_VERSION}-s{seed}-{self.train}train-{self.val}val-{self.width}x{self.height}"


def write_default_scenes(root: Path, seed: int = 0, *, train: int = 3, val: int = 2, width: int = 512,
                         height: int = 256) -> Path:
    """Draw the default synthetic scenes and write them under ``root`` in Cityscapes layout.

    Args:
        root: folder to write into (created if missing); existing files of the same names
            are overwritten (other files are left: give each setting its own folder,
            :meth:`DefaultScenes.cache_name`).
        seed: seed of the scenes; the same seed and settings give byte-identical files.
        train, val: frames drawn for the train and the val city.
        width, height: frame size in pixels.

    Returns:
        ``root``, usable as the spec of the ``cityscapes`` source.

    Raises:
        ValueError: a count or size out of range (:class:`DefaultScenes`).
    """
    settings = DefaultScenes(train=train, val=val, width=width, height=height)
    require(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, "seed", seed, "use an integer >= 0")
    root = Path(root)
    for split_index, (split, city) in enumerate(CITIES):
        img_dir = root / "leftImg8bit" / split / city
        gt_dir = root / "gtFine" / split / city
        img_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        for frame in range(settings.frames(split)):
            rng = np.random.default_rng((seed, split_index, frame))
            stem = f"{city}_000000_{frame:06d}"
            objects, crops = _visible(street_layout(rng, width, height), width, height)
            rgb, label_ids, instance_ids = _render(objects, crops, rng, width, height)
            Image.fromarray(rgb, mode="RGB").save(img_dir / f"{stem}_leftImg8bit.png")
            Image.fromarray(label_ids, mode="L").save(gt_dir / f"{stem}_gtFine_labelIds.png")
            _save_uint16(instance_ids, gt_dir / f"{stem}_gtFine_instanceIds.png")
            doc = {
                "imgHeight": height,
                "imgWidth": width,
                "objects": [{"label": o.label, "polygon": [list(p) for p in o.polygon]} for o in objects],
            }
            (gt_dir / f"{stem}_gtFine_polygons.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return root


def painted_colours(seed: int, split: str, frame: int, *, width: int = 512, height: int = 256) -> dict[int, str]:
    """The paint names of the cars and people of one drawn frame, by instanceIds value.

    Redraws the layout of frame ``frame`` of ``split`` (as :func:`write_default_scenes` does,
    without rendering) and names each visible car by its body paint and each person by its
    clothes (:mod:`owl_data.sources.synthetic.palette`: ``"red"``, ``"dark blue"``...).
    """
    split_index = [s for s, _ in CITIES].index(split)
    rng = np.random.default_rng((seed, split_index, frame))
    objects, _ = _visible(street_layout(rng, width, height), width, height)
    names = {p.body: p.name for p in CAR_PAINTS}
    clothes = {p.rgb: p.name for p in CLOTHES_PAINTS}
    out: dict[int, str] = {}
    counters: dict[str, int] = {}
    for obj in objects:
        label = name2label[obj.label]
        if not label.hasInstances:
            continue
        k = counters.get(obj.label, 0)
        counters[obj.label] = k + 1
        table = names if obj.label == "car" else clothes if obj.label == "person" else {}
        if tuple(obj.colour) in table:
            out[label.id * 1000 + k] = table[tuple(obj.colour)]
    return out


def write_default_sources(root: Path, seed: int = 0, *, train: int = 3, val: int = 2, width: int = 512,
                          height: int = 256) -> list[tuple[str, str]]:
    """Write the embedded default for all four tasks; return its ``[(source name, spec)]``.

    The scenes of :func:`write_default_scenes` (same arguments; Cityscapes layout, read by
    ``cityscapes``: point-guided VQA and nothing else) plus, for the same images, VQA v2
    questions and answers, COCO captions and RefCOCO-style referring expressions computed
    from the drawn objects (:mod:`owl_data.sources.synthetic.tasks`), read by ``vqav2``,
    ``coco_captions`` and ``refcoco``. Everything written is synthetic; mark the sources so.
    """
    root = write_default_scenes(root, seed=seed, train=train, val=val, width=width, height=height)
    return [(DEFAULT_SOURCE_NAME, str(root)), *write_task_files(root)]


COMPLETE = ".complete"
"""The file :func:`cached_default_sources` writes last in a drawn folder: the drawing is whole."""


def cached_default_sources(cache: Path, seed: int = 0, *, train: int = 3, val: int = 2, width: int = 512,
                           height: int = 256) -> list[tuple[str, str]]:
    """:func:`write_default_sources` into a cache folder shared by concurrent builds.

    The folder's name must identify the drawing (:meth:`DefaultScenes.cache_name`): a folder
    holding :data:`COMPLETE` is used as it is (the drawing is deterministic); otherwise the
    scenes are drawn into a private folder beside it and renamed into place whole, so a build
    never reads a file another build is writing. Two builds drawing at once both finish; the
    second rename loses and its copy is removed. A folder left incomplete (an older version
    drew in place, or a kill) is replaced in one exchange (:func:`owl_data.fs.swap_into_place`).
    """
    from owl_data.fs import swap_into_place
    from owl_data.sources.synthetic.tasks import task_specs

    cache = Path(cache)
    if not (cache / COMPLETE).is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.parent / f".{cache.name}.drawing-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        write_default_sources(tmp, seed=seed, train=train, val=val, width=width, height=height)
        (tmp / COMPLETE).write_text("")
        try:
            os.rename(tmp, cache)  # refused when another build put a folder there first
        except OSError:
            if (cache / COMPLETE).is_file():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                swap_into_place(tmp, cache)
    return [(DEFAULT_SOURCE_NAME, str(cache)), *task_specs(cache)]


def _save_uint16(arr: np.ndarray, path: Path) -> None:
    """Save an (H, W) uint16 map as a 16-bit PNG and check it reads back unchanged."""
    Image.fromarray(arr.astype(np.uint16)).save(path)
    with Image.open(path) as im:
        back = np.array(im)
    if back.dtype != np.uint16 or not np.array_equal(back, arr):
        raise RuntimeError(f"16-bit PNG round trip failed for {path} (read back {back.dtype}, mode {im.mode})")


# --- rendering --------------------------------------------------------------------------

Point = tuple[int, int]
Crop = tuple[tuple[slice, slice], np.ndarray]
"""(rows, columns) slices of the frame and the (h, w) bool mask of a polygon inside them."""


def _polygon_mask(polygon: list[Point], width: int, height: int) -> Crop | None:
    """A polygon rasterised by ``PIL.ImageDraw.polygon`` on the whole frame (as cityscapesscripts),
    cut to the box of its vertices; None when no pixel of the frame is covered."""
    img = Image.new("L", (width, height), 0)
    ImageDraw.Draw(img).polygon(polygon, fill=1)
    us, vs = [p[0] for p in polygon], [p[1] for p in polygon]
    x0, x1 = max(min(us), 0), min(max(us) + 1, width)
    y0, y1 = max(min(vs), 0), min(max(vs) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    sl = (slice(y0, y1), slice(x0, x1))
    mask = np.array(img, dtype=bool)[sl]
    return (sl, mask) if mask.any() else None


HEAD = 0.16
"""Top share of a person's height painted as the head (skin)."""
MAX_HEAD_SHARE = 0.35
"""A person of whom the head makes more than this share of the visible pixels is left out: its
colour (the clothes) could not be read from what shows."""


def _visible(objects: list[Obj], width: int, height: int) -> tuple[list[Obj], list[Crop]]:
    """The objects of which at least one pixel stays visible after painting all, with their masks.

    People of whom mostly the head would show are left out too (then the rest is recomputed,
    as leaving one out can uncover others).
    """
    crops = [_polygon_mask(obj.polygon, width, height) for obj in objects]
    keep = [i for i in range(len(objects)) if crops[i] is not None]
    while True:
        owner = np.full((height, width), -1, dtype=np.int32)
        for i in keep:
            sl, mask = crops[i]
            owner[sl][mask] = i
        seen = set(np.unique(owner).tolist())
        drop = {i for i in keep if i not in seen}
        for i in keep:
            if objects[i].label == "person" and i in seen:
                ys = [p[1] for p in objects[i].polygon]
                rows = np.nonzero(owner == i)[0]
                if np.mean(rows < min(ys) + HEAD * (max(ys) - min(ys))) > MAX_HEAD_SHARE:
                    drop.add(i)
        if not drop:
            return [objects[i] for i in keep], [crops[i] for i in keep]
        keep = [i for i in keep if i not in drop]


def _render(objects: list[Obj], crops: list[Crop], rng: np.random.Generator, width: int,
            height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint the objects in order (``crops``: their masks, from :func:`_visible`).

    Returns:
        rgb (H, W, 3) uint8, labelIds (H, W) uint8, instanceIds (H, W) uint16.
    """
    rgb = np.zeros((height, width, 3), dtype=np.float64)
    label_ids = np.zeros((height, width), dtype=np.uint8)          # 0 = unlabeled
    instance_ids = np.zeros((height, width), dtype=np.uint16)
    counters: dict[str, int] = {}
    for obj, (sl, mask) in zip(objects, crops):
        label = name2label[obj.label]
        value = label.id
        if label.hasInstances:
            k = counters.get(obj.label, 0)
            counters[obj.label] = k + 1
            value = label.id * 1000 + k
        label_ids[sl][mask] = label.id
        instance_ids[sl][mask] = value

        ys = [p[1] for p in obj.polygon]
        y0, y1 = min(ys), max(max(ys), min(ys) + 1)
        rows = np.arange(sl[0].start, sl[0].stop, dtype=np.float64)[:, None]  # (h, 1) frame rows
        t = np.clip((rows - y0) / (y1 - y0), 0.0, 1.0) - 0.5        # (h, 1) in [-0.5, 0.5]
        layer = np.asarray(obj.colour, dtype=np.float64)[None, None, :] + (obj.shade * 40.0 * t)[:, :, None]
        region = rgb[sl]                                               # (h, w, 3) view
        region[mask] = np.broadcast_to(layer, region.shape)[mask]
        if obj.label == "car":
            _car_details(region, sl, mask, obj.polygon, obj.detail or obj.colour)
        elif obj.label == "traffic light":
            _lamps(region, sl, mask, obj.polygon)
        elif obj.label == "person":
            head = mask & (rows < y0 + HEAD * (y1 - y0))
            region[head] = SKIN
        if obj.label in _SHADED:
            region[mask] *= _lighting(obj.polygon, sl, rng)[mask][:, None]
    rgb += rng.normal(0.0, NOISE_SIGMA, size=rgb.shape)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8), label_ids, instance_ids


_SHADED = frozenset({"car", "person", "rider", "traffic light", "traffic sign", "pole"})
"""Objects lit by :func:`_lighting` (stuff keeps its vertical ``shade`` only)."""
LIGHT_GRADIENT = (0.15, 0.3)
"""Range of the lightness change across an object, left to right or right to left (factor
``1 + g/2`` on the lit side down to ``1 - g/2`` on the other)."""
SHADOW_BAND = (0.12, 0.2)
"""Range of the height share of the shadow band at a car's or person's bottom."""
SHADOW_FACTOR = 0.6
"""Lightness factor inside the shadow band (sRGB levels multiplied)."""
NOISE_SIGMA = 5.0
"""Standard deviation of the per-pixel, per-channel Gaussian noise, in 8-bit levels."""


def _lighting(polygon: list[Point], sl: tuple[slice, slice], rng: np.random.Generator) -> np.ndarray:
    """(h, w) lightness factors of an object's crop: a horizontal gradient (light from one side,
    strength and side drawn from ``rng``) times a shadow band at the bottom of the object."""
    xs = [p[0] for p in polygon]
    ys = [p[1] for p in polygon]
    x0, x1, top, bottom = min(xs), max(max(xs), min(xs) + 1), min(ys), max(ys)
    g = float(rng.uniform(*LIGHT_GRADIENT)) * (1.0 if rng.random() < 0.5 else -1.0)
    band = float(rng.uniform(*SHADOW_BAND))
    yy, xx = _grid(sl)
    factor = 1.0 + g * (np.clip((xx - x0) / (x1 - x0), 0.0, 1.0) - 0.5)
    return np.where(yy >= bottom - band * (bottom - top), factor * SHADOW_FACTOR, factor)


def _grid(sl: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
    """(h, w) frame rows and columns of the pixels of a crop."""
    return np.mgrid[sl[0].start:sl[0].stop, sl[1].start:sl[1].stop]


def _lamps(region: np.ndarray, sl: tuple[slice, slice], mask: np.ndarray, polygon: list[Point]) -> None:
    """Red, amber and green lamps of a traffic light, top to bottom (RGB only)."""
    xs = [p[0] for p in polygon]
    ys = [p[1] for p in polygon]
    cx, y0, y1 = (min(xs) + max(xs)) / 2.0, min(ys), max(ys)
    r2 = max(5.0, (0.3 * (max(xs) - min(xs))) ** 2)
    yy, xx = _grid(sl)
    for i, c in enumerate(((220, 30, 30), (240, 170, 20), (40, 200, 70))):
        cy = y0 + (i + 0.5) * (y1 - y0) / 3.0
        lamp = (xx - cx) ** 2 + (yy - cy) ** 2 <= r2
        region[lamp & mask] = c


def _car_details(region: np.ndarray, sl: tuple[slice, slice], mask: np.ndarray, polygon: list[Point],
                 window: tuple[int, int, int]) -> None:
    """Windows (in ``window``) and wheels, painted in RGB only (inside the car's mask; they are the car)."""
    xs = [p[0] for p in polygon]
    ys = [p[1] for p in polygon]
    x0, x1, bottom, top = min(xs), max(xs), max(ys), min(ys)
    length = x1 - x0
    yy, xx = _grid(sl)
    wy0, wy1 = top + 3, top + int(0.45 * (bottom - top)) - 2
    win = (yy >= wy0) & (yy < wy1) & (xx >= x0 + int(0.33 * length)) & (xx < x0 + int(0.63 * length))
    region[win & mask] = window
    r = max(1, round(0.09 * length))  # wheels in proportion, so a far car is not mostly wheel
    for wx in (x0 + 0.2 * length, x0 + 0.8 * length):
        wheel = (xx - wx) ** 2 + (yy - (bottom - r + 1)) ** 2 <= r * r
        region[wheel & mask] = WHEEL
