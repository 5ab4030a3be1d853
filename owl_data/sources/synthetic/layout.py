"""Randomised street layouts of the drawn default scenes: a pinhole camera over a street.

A scene is a street seen by a level pinhole camera (no roll: the horizon is one image row)
standing between the two rows of facades and looking along, across or obliquely at the
street. Everything that varies is drawn from the scene's ``rng``, so the position of a
pixel in the frame says little about what it shows:

* camera: horizontal field of view (50..90 degrees), height above the ground (1.2..2.1 m),
  horizon row (0.2..0.72 of the frame height), yaw to the street (0 looks along it, 80
  degrees nearly across) and lateral position on the street;
* street: road width (6..16 m) and each sidewalk's width (1.5..5 m); each side a row of
  facades (buildings of varied widths and heights with hedges between them) or a park
  (vegetation with the odd building), so buildings and vegetation appear on either side;
* objects: each kind is present with its own probability (:data:`PRESENCE`), then a
  random count: 2..5 cars on the lanes or parked at either curb, at any distance along the
  road, facing either way, no two in one place and each a different colour; 2..6 people on
  either sidewalk or crossing the road; poles at either curb or by the facades, bare (1..2),
  carrying a traffic light (1..3, some with a sign under it) or a traffic sign on top
  (1..3); 1..6 trees on the sidewalks. Objects too far to be drawn at a useful size are
  skipped, so a frame may hold fewer;
* the whole frame is mirrored left/right with probability 1/2.

Ground (road, sidewalks) and facades are planar polygons in the world, clipped at the
camera's near plane, projected, and clipped to the frame (plus a 2-pixel margin); objects
are upright billboards (a car's side-view outline, a person's silhouette, a pole's
rectangle) scaled by their distance, so farther is smaller and nearer the horizon, as a
camera sees it. Painter's order: sky, ground, facades, then the billboards from the
farthest to the nearest (a pole's light or sign right after its pole), so nearer cars hide
farther ones and a person crossing in front of a car hides part of it.

Units and frames: the world in metres, the street's coordinates ``a`` across it (0 on the
road's centre line) and ``b`` along it; camera coordinates x right, y down, z forward
(metres); image pixels u right, v down, with integer polygon vertices (the camera and its
projection: :mod:`owl_data.sources.synthetic.camera`; the paints: :mod:`~owl_data.sources.synthetic.palette`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from cityscapesscripts.helpers.labels import name2label

from owl_data.sources.synthetic.camera import FAR, Camera, Point, along_street, facade_polygon, ground_polygon
from owl_data.sources.synthetic.palette import CAR_COLOURS, CAR_PAINTS, CAR_WINDOWS, CLOTHES, CLOTHES_PAINTS, SKIN, WHEEL

__all__ = ["Obj", "CAR_COLOURS", "CAR_WINDOWS", "WHEEL", "CLOTHES", "SKIN", "PRESENCE", "street_layout"]

LIGHT_BODY = (40, 40, 40)

PRESENCE = {"car": 0.85, "person": 0.9, "bare pole": 0.5, "traffic light": 0.55, "traffic sign": 0.55,
            "tree": 0.55}
"""Probability that a scene holds any object of the kind (then a random count of them)."""

MAX_CARS = 5          # at most len(CAR_PAINTS): no two cars of a frame share a colour


@dataclass
class Obj:
    """One polygon in drawing order with how to paint it.

    Attributes:
        label: Cityscapes label name.
        polygon: integer (u, v) vertices in pixels.
        colour: RGB paint.
        shade: vertical brightness change across the object, in [-1, 1] * 40 levels.
        detail: colour of a car's windows (None for other objects).
    """

    label: str
    polygon: list[Point]
    colour: tuple[int, int, int]
    shade: float = 0.0
    detail: tuple[int, int, int] | None = None


def _car(x: float, bottom: float, length: float, height: float, facing: int) -> list[Point]:
    """Side view of a car (body, cabin on top); ``x`` left end, ``bottom`` wheel line, px."""
    h = height
    body_top = bottom - 0.55 * h
    pts = [
        (0, bottom), (length, bottom), (length, body_top + 0.1 * h), (0.78 * length, body_top),
        (0.66 * length, bottom - h), (0.30 * length, bottom - h), (0.18 * length, body_top),
        (0.05 * h, body_top + 0.05 * h),
    ]
    if facing < 0:
        pts = [(length - u, v) for u, v in pts]
    return [(int(round(x + u)), int(round(v))) for u, v in pts]


def _person(x: float, feet: float, height: float) -> list[Point]:
    """Silhouette of a standing person (head, shoulders, legs); ``x`` centre, ``feet`` row, px."""
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


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[Point]:
    x0, y0, x1, y1 = (int(round(v)) for v in (x0, y0, x1, y1))
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 20) -> list[Point]:
    return [
        (int(round(cx + rx * math.cos(2 * math.pi * i / n))), int(round(cy + ry * math.sin(2 * math.pi * i / n))))
        for i in range(n)
    ]


def _jitter(rgb: tuple[int, int, int], rng: np.random.Generator, amount: int) -> tuple[int, int, int]:
    d = int(rng.integers(-amount, amount + 1))
    return tuple(int(np.clip(v + d, 0, 255)) for v in rgb)


def _count(rng: np.random.Generator, kind: str, least: int, most: int) -> int:
    """How many of ``kind`` to try to place: 0 (absent), else ``least..most``."""
    return int(rng.integers(least, most + 1)) if rng.random() < PRESENCE[kind] else 0


_COLOUR = {n: name2label[n].color for n in ("sky", "building", "vegetation", "sidewalk", "road", "pole",
                                           "traffic sign")}
"""Cityscapes label colours of the stuff and the poles and signs."""


@dataclass(frozen=True)
class _Street:
    """The street's cross-section in metres along ``a``: the road's width, each sidewalk's
    width (at a < 0, at a > 0) and the two facade lines."""

    road: float
    walks: tuple[float, float]
    edge: tuple[float, float]


@dataclass(frozen=True)
class _Place:
    """A ground point in view: column ``u`` and row ``v`` (px), ``s`` px per metre there,
    camera distance ``z`` and street coordinate ``b`` (m)."""

    u: float
    v: float
    s: float
    z: float
    b: float


Group = tuple[float, list[Obj]]
"""(distance z in metres, billboards drawn together, e.g. a pole and its light)."""


def _view(rng: np.random.Generator, W: int, H: int) -> tuple[Camera, _Street]:
    """Draw the street and the camera standing in it (eight draws, in this order)."""
    fov = math.radians(rng.uniform(50, 90))
    yaw = math.radians(rng.uniform(0, 80))
    road = float(rng.uniform(6, 16))
    walks = (float(rng.uniform(1.5, 5)), float(rng.uniform(1.5, 5)))  # sidewalk at a < 0, at a > 0
    edge = (-road / 2 - walks[0], road / 2 + walks[1])  # the facade lines
    # looking along, the camera stands anywhere across the street; looking across, on the near
    # (a > 0) side, so that the far side is in view
    if yaw < math.radians(45):
        lateral = float(rng.uniform(edge[0] + 0.3, edge[1] - 0.3))
    else:
        lateral = float(rng.uniform(0.2, 0.95)) * (edge[1] - 0.3)
    cam = Camera(f=(W / 2) / math.tan(fov / 2), cx=W / 2, horizon=float(rng.uniform(0.2, 0.72)) * H,
                  height=float(rng.uniform(1.2, 2.1)), yaw=yaw, lateral=lateral)
    return cam, _Street(road, walks, edge)


def _backdrop(cam: Camera, st: _Street, rng: np.random.Generator, W: int, H: int) -> list[Obj]:
    """Sky, road and sidewalks, then each side's row of facades (or a park), in painter's order."""
    road, edge = st.road, st.edge
    objs: list[Obj] = [Obj("sky", [(0, 0), (W, 0), (W, H), (0, H)], _COLOUR["sky"], shade=-0.6)]
    for label, a0, a1, shade in (("road", -road / 2, road / 2, 0.3), ("sidewalk", edge[0], -road / 2, 0.2),
                                 ("sidewalk", road / 2, edge[1], 0.2)):
        poly = ground_polygon(cam, a0, a1, -FAR, FAR, W, H)
        if poly:
            objs.append(Obj(label, poly, _jitter(_COLOUR[label], rng, 8), shade=shade))
    for a in edge:  # each side a row of facades, or a park
        park = rng.random() < 0.3
        b = -FAR
        while b < FAR:
            seg = float(rng.uniform(6, 25)) if abs(b) < 100 else float(rng.uniform(30, 80))
            if rng.random() < (0.85 if park else 0.2):
                label, hgt, c, shade = "vegetation", float(rng.uniform(2.8, 10)), _jitter(_COLOUR["vegetation"], rng, 15), 0.4
            else:
                label, hgt, c, shade = "building", float(rng.uniform(5, 35)), _jitter(_COLOUR["building"], rng, 20), 0.3
            poly = facade_polygon(cam, a, b, min(b + seg, FAR), hgt, W, H)
            if poly:
                objs.append(Obj(label, poly, c, shade=shade))
            b += seg
    return objs


def _place(cam: Camera, a: float, rng: np.random.Generator, W: int) -> _Place | None:
    """A ground point at lateral ``a`` in view (:func:`_along`), or None."""
    got = along_street(cam, a, rng, W)
    if got is None:
        return None
    b, x, z = got
    return _Place(cam.cx + cam.f * x / z, cam.horizon + cam.f * cam.height / z, cam.f / z, z, b)


def _cars(cam: Camera, st: _Street, rng: np.random.Generator, W: int) -> list[Group]:
    """2..5 cars of distinct paints on the lanes (curb lanes too on a wide road), never two in
    one place; a car seen nearly end-on is as long as it is wide; cars under 14 px are skipped."""
    road = st.road
    lanes = [-road / 4, road / 4] + ([-road / 2 + 1.1, road / 2 - 1.1] if road >= 9 else [])
    parked: list[tuple[int, float, float]] = []  # (lane, b, length in m) of the cars placed
    groups: list[Group] = []
    for ci in rng.permutation(len(CAR_PAINTS))[: _count(rng, "car", 2, MAX_CARS)]:
        lane = int(rng.integers(len(lanes)))
        a = float(lanes[lane] + rng.uniform(-0.3, 0.3))
        p = _place(cam, a, rng, W)
        length_m, height_m = float(rng.uniform(3.8, 4.9)), float(rng.uniform(1.35, 1.65))
        if p is None or any(k == lane and abs(p.b - b) < (n + length_m) / 2 + 0.5 for k, b, n in parked):
            continue  # out of view, or where another car already is
        ray = math.hypot(p.u - cam.cx, cam.f)
        along = abs(((p.u - cam.cx) * math.sin(cam.yaw) + cam.f * math.cos(cam.yaw)) / ray)  # |cos| ray vs street
        length = p.s * (length_m * math.sqrt(max(0.0, 1 - along * along)) + 1.8 * along)
        if length < 14:
            continue
        parked.append((lane, p.b, length_m))
        facing = 1 if rng.random() < 0.5 else -1
        paint = CAR_PAINTS[int(ci)]
        groups.append((p.z, [Obj("car", _car(p.u - length / 2, p.v, length, p.s * height_m, facing),
                                 paint.body, detail=paint.window)]))
    return groups


def _people(cam: Camera, st: _Street, rng: np.random.Generator, W: int) -> list[Group]:
    """2..6 people in distinct clothes on either sidewalk or crossing the road (a quarter);
    people under 14 px are skipped."""
    road, walks = st.road, st.walks
    groups: list[Group] = []
    for ci in rng.permutation(len(CLOTHES_PAINTS))[: _count(rng, "person", 2, len(CLOTHES_PAINTS))]:
        if rng.random() < 0.25:  # crossing the road
            a = float(rng.uniform(-road / 2 + 0.5, road / 2 - 0.5))
        else:
            side = int(rng.integers(2))
            a = float(rng.uniform(-road / 2 - walks[0] + 0.3, -road / 2 - 0.2) if side == 0
                      else rng.uniform(road / 2 + 0.2, road / 2 + walks[1] - 0.3))
        p = _place(cam, a, rng, W)
        if p is None:
            continue
        h = p.s * float(rng.uniform(1.5, 1.9))
        if h >= 14:
            groups.append((p.z, [Obj("person", _person(p.u, p.v, h), CLOTHES_PAINTS[int(ci)].rgb)]))
    return groups


def _pole_group(kind: str, p: _Place, rng: np.random.Generator) -> Group | None:
    """A pole at ``p`` with what it carries (a light, maybe a sign under it; or a sign on top),
    or None when the pole would be under 12 px."""
    u, v, s = p.u, p.v, p.s
    pole_m = {"bare pole": (5, 8), "traffic light": (3.5, 5), "traffic sign": (2.2, 3)}[kind]
    top = v - s * float(rng.uniform(*pole_m))
    half = max(1.0, s * 0.07)
    if v - top < 12:
        return None
    group = [Obj("pole", _rect(u - half, top, u + half, v), _COLOUR["pole"])]
    if kind == "traffic light":
        lw, lh = max(4.5, s * 0.18), max(10.0, s * 0.9)
        group.append(Obj("traffic light", _rect(u - lw, top - 0.8 * lh, u + lw, top + 0.2 * lh), LIGHT_BODY))
        if rng.random() < 0.35:  # a sign under the light
            r = max(4.0, s * float(rng.uniform(0.25, 0.4)))
            cy = top + 0.2 * lh + 1.3 * r
            group.append(Obj("traffic sign", _ellipse(u, cy, r, r, n=16), _COLOUR["traffic sign"]))
    elif kind == "traffic sign":
        r = max(4.0, s * float(rng.uniform(0.3, 0.45)))
        group.append(Obj("traffic sign", _ellipse(u, top - 0.6 * r, r, r, n=16), _COLOUR["traffic sign"]))
    return p.z, group


def _poles(cam: Camera, st: _Street, rng: np.random.Generator, W: int) -> list[Group]:
    """Bare poles (1..2), poles with a traffic light (1..3) and with a sign (1..3), each kind
    present or not, at either curb (70%) or by the facades."""
    road, edge = st.road, st.edge
    groups: list[Group] = []
    for kind, most in (("bare pole", 2), ("traffic light", 3), ("traffic sign", 3)):
        for _ in range(_count(rng, kind, 1, most)):
            side = 1 if rng.random() < 0.5 else -1
            a = side * (road / 2 + 0.35) if rng.random() < 0.7 else (edge[1] - 0.4 if side > 0 else edge[0] + 0.4)
            p = _place(cam, a, rng, W)
            if p is None:
                continue
            group = _pole_group(kind, p, rng)
            if group is not None:
                groups.append(group)
    return groups


def _trees(cam: Camera, st: _Street, rng: np.random.Generator, W: int) -> list[Group]:
    """1..6 trees (a trunk and a crown) on the sidewalks."""
    road, walks = st.road, st.walks
    groups: list[Group] = []
    for _ in range(_count(rng, "tree", 1, 6)):
        side = 1 if rng.random() < 0.5 else -1
        a = side * (road / 2 + walks[(side + 1) // 2] * float(rng.uniform(0.5, 0.9)))
        p = _place(cam, a, rng, W)
        if p is None:
            continue
        u, v, s = p.u, p.v, p.s
        r = s * float(rng.uniform(1.2, 3.0))
        cy = v - s * float(rng.uniform(2.5, 4.5))
        c = _jitter(_COLOUR["vegetation"], rng, 15)
        groups.append((p.z, [Obj("vegetation", _rect(u - max(1.0, s * 0.15), cy, u + max(1.0, s * 0.15), v), c, 0.2),
                             Obj("vegetation", _ellipse(u, cy, r, r * 0.9), c, 0.4)]))
    return groups


def street_layout(rng: np.random.Generator, width: int, height: int) -> list[Obj]:
    """Polygons of one randomised street scene of ``width`` x ``height`` px, in painter's order.

    The draws from ``rng`` come in a fixed order (camera and street, backdrop, cars, people,
    poles, trees, the mirror), so a seed gives the same scene.
    """
    W, H = width, height
    cam, st = _view(rng, W, H)
    objs = _backdrop(cam, st, rng, W, H)
    groups = _cars(cam, st, rng, W) + _people(cam, st, rng, W) + _poles(cam, st, rng, W) + _trees(cam, st, rng, W)
    groups.sort(key=lambda g: -g[0])  # farthest first; a stable sort keeps equal distances in order
    objs += [o for _, g in groups for o in g]
    if rng.random() < 0.5:  # the mirrored street
        objs = [Obj(o.label, [(W - 1 - u, v) for u, v in o.polygon], o.colour, o.shade, o.detail) for o in objs]
    return objs
