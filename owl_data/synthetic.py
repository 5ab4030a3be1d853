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

Every object is one polygon in pixel coordinates (x right, y down, integer vertices).
Objects are drawn in painter's order (sky, buildings, trees, sidewalks, road, poles,
traffic lights and signs, cars back to front, pedestrians), and the label and instance
maps are the result of that order: each pixel belongs to the last polygon covering it, so
the maps hold the *visible* regions, exactly what ``cityscapesscripts``' ``json2labelImg``
and ``json2instanceImg`` draw from the polygons file (both rasterise with
``PIL.ImageDraw.polygon``, as done here). Instance values follow Cityscapes:
``class_id * 1000 + k`` with ``k`` counting the objects of that class in drawing order;
stuff and the object classes without instances hold the plain ``class_id``. Ids and
label names come from ``cityscapesscripts.helpers.labels``.

Pixel colours: stuff is its Cityscapes label colour with shading and mild noise; cars and
pedestrians are painted in their own body/clothing colour (red, blue, white, black, ...)
so colour naming has something to find. Everything is drawn from
``np.random.default_rng(seed)``; the files written are byte-identical for a given seed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import name2label
from PIL import Image, ImageDraw

__all__ = ["DEFAULT_SOURCE_NAME", "DEFAULT_CITIES", "write_default_scenes", "write_default_sources"]

DEFAULT_SOURCE_NAME = "cityscapes"

# (split, city, frames); two cities in two splits so the split/group logic is exercised.
DEFAULT_CITIES: tuple[tuple[str, str, int], ...] = (("train", "synthville", 3), ("val", "drawburg", 2))

WIDTH, HEIGHT = 512, 256

CAR_COLOURS: tuple[tuple[int, int, int], ...] = (
    (200, 30, 30),    # red
    (30, 60, 190),    # blue
    (235, 235, 235),  # white
    (25, 25, 25),     # black
    (230, 200, 40),   # yellow
    (60, 150, 70),    # green
)
CLOTHES: tuple[tuple[int, int, int], ...] = (
    (40, 40, 120), (180, 40, 40), (30, 30, 30), (220, 220, 210), (60, 120, 60), (150, 90, 40),
)
SKIN = (224, 172, 140)

Point = tuple[int, int]


@dataclass
class _Obj:
    """One polygon in drawing order with how to paint it (internal)."""

    label: str
    polygon: list[Point]
    colour: tuple[int, int, int]
    shade: float = 0.0  # vertical brightness change across the object, in [-1, 1] * 40 levels


def write_default_scenes(root: Path, seed: int = 0) -> Path:
    """Draw the default synthetic scenes and write them under ``root`` in Cityscapes layout.

    Args:
        root: folder to write into (created if missing); existing files of the same names
            are overwritten.
        seed: seed of ``np.random.default_rng``; the same seed gives byte-identical files.

    Returns:
        ``root``, usable as the spec of the ``cityscapes`` source.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, city, n_frames in DEFAULT_CITIES:
        img_dir = root / "leftImg8bit" / split / city
        gt_dir = root / "gtFine" / split / city
        img_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        for frame in range(n_frames):
            stem = f"{city}_000000_{frame:06d}"
            objects = _layout(rng)
            rgb, label_ids, instance_ids = _render(objects, rng)
            Image.fromarray(rgb, mode="RGB").save(img_dir / f"{stem}_leftImg8bit.png")
            Image.fromarray(label_ids, mode="L").save(gt_dir / f"{stem}_gtFine_labelIds.png")
            _save_uint16(instance_ids, gt_dir / f"{stem}_gtFine_instanceIds.png")
            doc = {
                "imgHeight": HEIGHT,
                "imgWidth": WIDTH,
                "objects": [{"label": o.label, "polygon": [list(p) for p in o.polygon]} for o in objects],
            }
            (gt_dir / f"{stem}_gtFine_polygons.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return root


def write_default_sources(root: Path, seed: int = 0) -> list[tuple[str, str]]:
    """Write the embedded default for all four tasks; return its ``[(source name, spec)]``.

    The scenes of :func:`write_default_scenes` (Cityscapes layout, read by ``cityscapes``:
    point-guided VQA and nothing else) plus, for the same images, VQA v2 questions and
    answers, COCO captions and RefCOCO-style referring expressions computed from the drawn
    objects (:mod:`owl_data.synthetic_tasks`), read by ``vqav2``, ``coco_captions`` and
    ``refcoco``. Everything written is synthetic; mark the sources so.
    """
    from owl_data.synthetic_tasks import write_task_files

    root = write_default_scenes(root, seed=seed)
    return [(DEFAULT_SOURCE_NAME, str(root)), *write_task_files(root)]


def _save_uint16(arr: np.ndarray, path: Path) -> None:
    """Save an (H, W) uint16 map as a 16-bit PNG and check it reads back unchanged."""
    Image.fromarray(arr.astype(np.uint16)).save(path)
    with Image.open(path) as im:
        back = np.array(im)
    if back.dtype != np.uint16 or not np.array_equal(back, arr):
        raise RuntimeError(f"16-bit PNG round trip failed for {path} (read back {back.dtype}, mode {im.mode})")


# --- layout ---------------------------------------------------------------------------


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[Point]:
    x0, y0, x1, y1 = (int(round(v)) for v in (x0, y0, x1, y1))
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 20) -> list[Point]:
    return [
        (int(round(cx + rx * math.cos(2 * math.pi * i / n))), int(round(cy + ry * math.sin(2 * math.pi * i / n))))
        for i in range(n)
    ]


def _car(x: float, bottom: float, length: float) -> list[Point]:
    """Side view of a car: body with a cabin on top; ``x`` left end, ``bottom`` wheel line."""
    h = 0.42 * length
    body_top = bottom - 0.55 * h
    pts = [
        (x, bottom), (x + length, bottom), (x + length, body_top + 4), (x + 0.78 * length, body_top),
        (x + 0.66 * length, bottom - h), (x + 0.30 * length, bottom - h), (x + 0.18 * length, body_top),
        (x + 2, body_top + 2),
    ]
    return [(int(round(a)), int(round(b))) for a, b in pts]


def _person(x: float, feet: float, height: float) -> list[Point]:
    """Silhouette of a standing person (head, shoulders, legs); ``x`` centre, ``feet`` y."""
    w = 0.26 * height
    head = 0.16 * height
    top = feet - height
    pts = [
        (x - 0.10 * w, top), (x + 0.10 * w, top), (x + 0.18 * w, top + head * 0.5), (x + 0.10 * w, top + head),
        (x + 0.50 * w, top + head + 2), (x + 0.50 * w, feet - 0.45 * height), (x + 0.30 * w, feet - 0.45 * height),
        (x + 0.30 * w, feet), (x + 0.04 * w, feet), (x, feet - 0.35 * height), (x - 0.04 * w, feet),
        (x - 0.30 * w, feet), (x - 0.30 * w, feet - 0.45 * height), (x - 0.50 * w, feet - 0.45 * height),
        (x - 0.50 * w, top + head + 2), (x - 0.10 * w, top + head), (x - 0.18 * w, top + head * 0.5),
    ]
    return [(int(round(a)), int(round(b))) for a, b in pts]


def _layout(rng: np.random.Generator) -> list[_Obj]:
    """Polygons of one street scene in painter's order (jittered by ``rng``)."""
    colour = {n: name2label[n].color for n in ("sky", "building", "vegetation", "sidewalk", "road", "pole",
                                              "traffic light", "traffic sign")}
    W, H = WIDTH, HEIGHT
    horizon = int(rng.integers(120, 136))       # where buildings meet the far sidewalk
    far_walk = horizon + int(rng.integers(16, 22))  # far sidewalk / road edge
    near_walk = H - int(rng.integers(18, 26))   # road / near sidewalk edge
    objs: list[_Obj] = [_Obj("sky", _rect(0, 0, W, horizon), colour["sky"], shade=-0.6)]

    x = float(rng.integers(-20, 0))
    while x < W:  # buildings along the far side, various heights
        bw = float(rng.integers(60, 110))
        top = float(rng.integers(25, horizon - 40))
        grey = int(rng.integers(-20, 20))
        c = tuple(int(np.clip(v + grey, 0, 255)) for v in colour["building"])
        objs.append(_Obj("building", _rect(x, top, x + bw, horizon), c, shade=0.3))
        x += bw
    for _ in range(int(rng.integers(2, 4))):  # trees: crown over the buildings, trunk to the sidewalk
        tx = float(rng.integers(30, W - 30))
        r = float(rng.integers(18, 28))
        cy = horizon - r - float(rng.integers(8, 20))
        crown = _ellipse(tx, cy, r, r * 0.9)
        objs.append(_Obj("vegetation", _rect(tx - 3, cy, tx + 3, horizon + 8), colour["vegetation"], shade=0.2))
        objs.append(_Obj("vegetation", crown, colour["vegetation"], shade=0.4))
    objs.append(_Obj("sidewalk", _rect(0, horizon, W, far_walk), colour["sidewalk"], shade=0.2))
    objs.append(_Obj("road", _rect(0, far_walk, W, near_walk), colour["road"], shade=0.3))
    objs.append(_Obj("sidewalk", _rect(0, near_walk, W, H), colour["sidewalk"], shade=0.2))

    # poles on the far sidewalk, a traffic light on each of the first two, a sign on the third
    pole_xs = sorted(int(v) for v in rng.choice(np.arange(40, W - 40, 12), size=3, replace=False))
    for i, px in enumerate(pole_xs):
        ptop = horizon - int(rng.integers(55, 75))
        objs.append(_Obj("pole", _rect(px - 1, ptop, px + 2, far_walk - 2), colour["pole"]))
        if i < 2:
            objs.append(_Obj("traffic light", _rect(px - 4, ptop - 20, px + 5, ptop + 2), (40, 40, 40)))
        else:
            objs.append(_Obj("traffic sign", _ellipse(px + 0.5, ptop - 6, 8, 8, n=16), colour["traffic sign"]))

    # cars back to front: a far row near the far sidewalk, a near row lower down; each near
    # car is placed over a far car so the far one is partly hidden
    car_colours = list(rng.permutation(len(CAR_COLOURS)))
    far_bottom = far_walk + int(rng.integers(34, 40))
    near_bottom = far_bottom + int(rng.integers(28, 34))
    far_x = [float(rng.integers(20, 60)), float(rng.integers(260, 300))]
    for i, cx in enumerate(far_x):
        objs.append(_Obj("car", _car(cx, far_bottom, float(rng.integers(80, 96))), CAR_COLOURS[car_colours[i]]))
    for i, cx in enumerate(far_x):
        nx = cx + float(rng.integers(35, 55))
        objs.append(_Obj("car", _car(nx, near_bottom, float(rng.integers(100, 120))), CAR_COLOURS[car_colours[2 + i]]))

    # pedestrians: on the far sidewalk, on the near sidewalk, one crossing in front of a car
    clothes = list(rng.permutation(len(CLOTHES)))
    walkers = [
        (float(rng.integers(150, 250)), far_walk - 2, float(rng.integers(40, 48))),
        (float(rng.integers(380, 480)), far_walk - 2, float(rng.integers(40, 48))),
        (far_x[1] + 70.0 + float(rng.integers(0, 20)), near_bottom + 6, float(rng.integers(60, 70))),
        (float(rng.integers(20, 120)), H - 4, float(rng.integers(64, 74))),
    ]
    for i, (px, feet, ph) in enumerate(walkers):
        objs.append(_Obj("person", _person(px, feet, ph), CLOTHES[clothes[i]]))
    return objs


# --- rendering --------------------------------------------------------------------------


def _polygon_mask(polygon: list[Point]) -> np.ndarray:
    """(H, W) bool mask of a polygon, rasterised by ``PIL.ImageDraw.polygon`` (as cityscapesscripts)."""
    img = Image.new("L", (WIDTH, HEIGHT), 0)
    ImageDraw.Draw(img).polygon(polygon, fill=1)
    return np.array(img, dtype=bool)


def _render(objects: list[_Obj], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint the objects in order.

    Returns:
        rgb (H, W, 3) uint8, labelIds (H, W) uint8, instanceIds (H, W) uint16.
    """
    rgb = np.zeros((HEIGHT, WIDTH, 3), dtype=np.float64)
    label_ids = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)          # 0 = unlabeled
    instance_ids = np.zeros((HEIGHT, WIDTH), dtype=np.uint16)
    counters: dict[str, int] = {}
    rows = np.arange(HEIGHT, dtype=np.float64)[:, None]
    for obj in objects:
        mask = _polygon_mask(obj.polygon)
        label = name2label[obj.label]
        value = label.id
        if label.hasInstances:
            k = counters.get(obj.label, 0)
            counters[obj.label] = k + 1
            value = label.id * 1000 + k
        label_ids[mask] = label.id
        instance_ids[mask] = value

        ys = [p[1] for p in obj.polygon]
        y0, y1 = min(ys), max(max(ys), min(ys) + 1)
        t = np.clip((rows - y0) / (y1 - y0), 0.0, 1.0) - 0.5        # (H, 1) in [-0.5, 0.5]
        layer = np.asarray(obj.colour, dtype=np.float64)[None, None, :] + (obj.shade * 40.0 * t)[:, :, None]
        layer = np.broadcast_to(layer, (HEIGHT, WIDTH, 3))
        rgb[mask] = layer[mask]
        if obj.label == "car":
            _car_details(rgb, mask, obj.polygon)
        elif obj.label == "traffic light":
            _lamps(rgb, mask, obj.polygon)
        elif obj.label == "person":
            head = mask & (rows < y0 + 0.16 * (y1 - y0))
            rgb[head] = SKIN
    rgb += rng.normal(0.0, 3.0, size=rgb.shape)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8), label_ids, instance_ids


def _lamps(rgb: np.ndarray, mask: np.ndarray, polygon: list[Point]) -> None:
    """Red, amber and green lamps of a traffic light, top to bottom (RGB only)."""
    xs = [p[0] for p in polygon]
    ys = [p[1] for p in polygon]
    cx, y0, y1 = (min(xs) + max(xs)) / 2.0, min(ys), max(ys)
    yy, xx = np.mgrid[0:mask.shape[0], 0:mask.shape[1]]
    for i, c in enumerate(((220, 30, 30), (240, 170, 20), (40, 200, 70))):
        cy = y0 + (i + 0.5) * (y1 - y0) / 3.0
        lamp = (xx - cx) ** 2 + (yy - cy) ** 2 <= 5.0
        rgb[lamp & mask] = c


def _car_details(rgb: np.ndarray, mask: np.ndarray, polygon: list[Point]) -> None:
    """Windows and wheels, painted in RGB only (inside the car's mask; they are the car)."""
    xs = [p[0] for p in polygon]
    ys = [p[1] for p in polygon]
    x0, x1, bottom, top = min(xs), max(xs), max(ys), min(ys)
    length = x1 - x0
    win = np.zeros_like(mask)
    wy0, wy1 = top + 3, top + int(0.45 * (bottom - top)) - 2
    win[max(wy0, 0):max(wy1, 0), max(x0 + int(0.33 * length), 0):max(x0 + int(0.63 * length), 0)] = True
    rgb[win & mask] = (90, 110, 130)
    yy, xx = np.mgrid[0:mask.shape[0], 0:mask.shape[1]]
    r = max(3, int(0.09 * length))
    for wx in (x0 + 0.2 * length, x0 + 0.8 * length):
        wheel = (xx - wx) ** 2 + (yy - (bottom - r + 1)) ** 2 <= r * r
        rgb[wheel & mask] = (20, 20, 20)
