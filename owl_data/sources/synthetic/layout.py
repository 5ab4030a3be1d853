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
(metres); image pixels u right, v down, with integer polygon vertices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from cityscapesscripts.helpers.labels import name2label

__all__ = ["Obj", "CAR_COLOURS", "CAR_WINDOWS", "WHEEL", "CLOTHES", "SKIN", "PRESENCE", "street_layout"]

CAR_COLOURS: tuple[tuple[int, int, int], ...] = (
    (200, 30, 30),    # red
    (30, 60, 190),    # blue
    (235, 235, 235),  # white
    (25, 25, 25),     # black
    (230, 200, 40),   # yellow
    (60, 150, 70),    # green
)
CAR_WINDOWS: tuple[tuple[int, int, int], ...] = (
    (150, 35, 40), (25, 45, 140), (215, 222, 230), (44, 46, 50), (170, 148, 30), (40, 110, 50),
)
"""Window glass of each car colour: a shade of the body with the same colour name, so a car of
which mostly the cabin shows (cut by the frame, or behind a nearer car) still reads as its colour."""
WHEEL = (20, 20, 20)
CLOTHES: tuple[tuple[int, int, int], ...] = (
    (40, 40, 120), (180, 40, 40), (30, 30, 30), (220, 220, 210), (60, 120, 60), (110, 65, 30),
)
SKIN = (224, 172, 140)
LIGHT_BODY = (40, 40, 40)

PRESENCE = {"car": 0.85, "person": 0.9, "bare pole": 0.5, "traffic light": 0.55, "traffic sign": 0.55,
            "tree": 0.55}
"""Probability that a scene holds any object of the kind (then a random count of them)."""

MAX_CARS = 5          # at most len(CAR_COLOURS): no two cars of a frame share a colour
Z_NEAR = 0.2          # m, the camera's near clipping plane
Z_OBJECTS = (4.0, 60.0)  # m, distances at which billboards are placed
FAR = 400.0           # m, how far the street runs each way along b
MARGIN = 2            # px, frame margin of clipped polygons

Point = tuple[int, int]


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


@dataclass(frozen=True)
class _Camera:
    f: float        # focal length, px
    cx: float       # principal point column, px
    horizon: float  # principal point row = horizon row, px
    height: float   # above the ground, m
    yaw: float      # radians between the view axis and the street direction
    lateral: float  # the camera's street coordinate a, m

    def to_cam(self, a: float, b: float) -> tuple[float, float]:
        """Street ground point (a, b) -> camera (x, z); the street runs along (sin yaw, cos yaw)."""
        s, c = math.sin(self.yaw), math.cos(self.yaw)
        da = a - self.lateral
        return da * c + b * s, -da * s + b * c


def _clip(poly: list[tuple[float, ...]], inside, cut) -> list[tuple[float, ...]]:
    """One Sutherland-Hodgman pass: keep the part of ``poly`` where ``inside`` holds."""
    out: list[tuple[float, ...]] = []
    for i, cur in enumerate(poly):
        prev = poly[i - 1]
        if inside(cur):
            if not inside(prev):
                out.append(cut(prev, cur))
            out.append(cur)
        elif inside(prev):
            out.append(cut(prev, cur))
    return out


def _project(cam: _Camera, pts3: list[tuple[float, float, float]], W: int, H: int) -> list[Point] | None:
    """Camera-frame polygon -> integer frame polygon, clipped at the near plane and the frame."""
    def z_cut(p, q):
        t = (Z_NEAR - p[2]) / (q[2] - p[2])
        return tuple(p[k] + t * (q[k] - p[k]) for k in range(3))

    pts3 = _clip(pts3, lambda p: p[2] >= Z_NEAR, z_cut)
    if len(pts3) < 3:
        return None
    poly: list[tuple[float, ...]] = [(cam.cx + cam.f * x / z, cam.horizon + cam.f * y / z) for x, y, z in pts3]
    for axis, bound, keep_below in ((0, -MARGIN, False), (0, W - 1 + MARGIN, True),
                                    (1, -MARGIN, False), (1, H - 1 + MARGIN, True)):
        def inside(p, axis=axis, bound=bound, keep_below=keep_below):
            return p[axis] <= bound if keep_below else p[axis] >= bound

        def cut(p, q, axis=axis, bound=bound):
            t = (bound - p[axis]) / (q[axis] - p[axis])
            return tuple(p[k] + t * (q[k] - p[k]) for k in range(2))

        poly = _clip(poly, inside, cut)
        if len(poly) < 3:
            return None
    out = [(int(round(u)), int(round(v))) for u, v in poly]
    us, vs = [p[0] for p in out], [p[1] for p in out]
    return out if max(us) > min(us) and max(vs) > min(vs) else None


def _ground(cam: _Camera, a0: float, a1: float, b0: float, b1: float, W: int, H: int) -> list[Point] | None:
    corners = [cam.to_cam(a, b) for a, b in ((a0, b0), (a1, b0), (a1, b1), (a0, b1))]
    return _project(cam, [(x, cam.height, z) for x, z in corners], W, H)


def _facade(cam: _Camera, a: float, b0: float, b1: float, height: float, W: int, H: int) -> list[Point] | None:
    (x0, z0), (x1, z1) = cam.to_cam(a, b0), cam.to_cam(a, b1)
    top = cam.height - height
    return _project(cam, [(x0, cam.height, z0), (x1, cam.height, z1), (x1, top, z1), (x0, top, z0)], W, H)


def _along(cam: _Camera, a: float, rng: np.random.Generator, W: int) -> tuple[float, float, float] | None:
    """A position b along the street at lateral ``a`` inside the view and Z_OBJECTS, as (b, x, z).

    Nearer places are favoured (density along the street ~ 1/z), so both near and far
    objects occur. None when no such place exists.
    """
    (x0, z0) = cam.to_cam(a, 0.0)
    dx, dz = math.sin(cam.yaw), math.cos(cam.yaw)
    t = (W / 2 + 8) / cam.f
    lo, hi = -FAR, FAR
    for p, q in ((z0 - Z_OBJECTS[0], dz), (Z_OBJECTS[1] - z0, -dz),
                 (t * z0 - x0, t * dz - dx), (t * z0 + x0, t * dz + dx)):  # p + q b >= 0
        if abs(q) < 1e-12:
            if p < 0:
                return None
        elif q > 0:
            lo = max(lo, -p / q)
        else:
            hi = min(hi, -p / q)
    if hi <= lo:
        return None
    z_lo = min(z0 + lo * dz, z0 + hi * dz)
    for _ in range(20):
        b = float(rng.uniform(lo, hi))
        x, z = cam.to_cam(a, b)
        if rng.random() <= z_lo / z:
            break
    return b, x, z


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


def street_layout(rng: np.random.Generator, width: int, height: int) -> list[Obj]:
    """Polygons of one randomised street scene of ``width`` x ``height`` px, in painter's order."""
    W, H = width, height
    colour = {n: name2label[n].color for n in ("sky", "building", "vegetation", "sidewalk", "road", "pole",
                                              "traffic sign")}
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
    cam = _Camera(f=(W / 2) / math.tan(fov / 2), cx=W / 2, horizon=float(rng.uniform(0.2, 0.72)) * H,
                  height=float(rng.uniform(1.2, 2.1)), yaw=yaw, lateral=lateral)

    objs: list[Obj] = [Obj("sky", [(0, 0), (W, 0), (W, H), (0, H)], colour["sky"], shade=-0.6)]
    for label, a0, a1, shade in (("road", -road / 2, road / 2, 0.3), ("sidewalk", edge[0], -road / 2, 0.2),
                                 ("sidewalk", road / 2, edge[1], 0.2)):
        poly = _ground(cam, a0, a1, -FAR, FAR, W, H)
        if poly:
            objs.append(Obj(label, poly, _jitter(colour[label], rng, 8), shade=shade))
    for a in edge:  # each side a row of facades, or a park
        park = rng.random() < 0.3
        b = -FAR
        while b < FAR:
            seg = float(rng.uniform(6, 25)) if abs(b) < 100 else float(rng.uniform(30, 80))
            if rng.random() < (0.85 if park else 0.2):
                label, hgt, c, shade = "vegetation", float(rng.uniform(2.8, 10)), _jitter(colour["vegetation"], rng, 15), 0.4
            else:
                label, hgt, c, shade = "building", float(rng.uniform(5, 35)), _jitter(colour["building"], rng, 20), 0.3
            poly = _facade(cam, a, b, min(b + seg, FAR), hgt, W, H)
            if poly:
                objs.append(Obj(label, poly, c, shade=shade))
            b += seg

    groups: list[tuple[float, list[Obj]]] = []  # (distance z, billboards drawn together)

    def place(a: float) -> tuple[float, float, float, float, float] | None:
        """(u, bottom v, px per metre, z, b) of a ground point at ``a`` in view, or None."""
        got = _along(cam, a, rng, W)
        if got is None:
            return None
        b, x, z = got
        return cam.cx + cam.f * x / z, cam.horizon + cam.f * cam.height / z, cam.f / z, z, b

    lanes = [-road / 4, road / 4] + ([-road / 2 + 1.1, road / 2 - 1.1] if road >= 9 else [])
    parked: list[tuple[int, float, float]] = []  # (lane, b, length in m) of the cars placed
    for ci in rng.permutation(len(CAR_COLOURS))[: _count(rng, "car", 2, MAX_CARS)]:
        lane = int(rng.integers(len(lanes)))
        a = float(lanes[lane] + rng.uniform(-0.3, 0.3))
        p = place(a)
        length_m, height_m = float(rng.uniform(3.8, 4.9)), float(rng.uniform(1.35, 1.65))
        if p is None or any(k == lane and abs(p[4] - b) < (n + length_m) / 2 + 0.5 for k, b, n in parked):
            continue  # out of view, or where another car already is
        u, v, s, z, b = p
        ray = math.hypot(u - cam.cx, cam.f)
        along = abs(((u - cam.cx) * math.sin(yaw) + cam.f * math.cos(yaw)) / ray)  # |cos| ray vs street
        length = s * (length_m * math.sqrt(max(0.0, 1 - along * along)) + 1.8 * along)
        if length < 14:
            continue
        parked.append((lane, b, length_m))
        facing = 1 if rng.random() < 0.5 else -1
        groups.append((z, [Obj("car", _car(u - length / 2, v, length, s * height_m, facing),
                               CAR_COLOURS[int(ci)], detail=CAR_WINDOWS[int(ci)])]))
    for ci in rng.permutation(len(CLOTHES))[: _count(rng, "person", 2, len(CLOTHES))]:
        if rng.random() < 0.25:  # crossing the road
            a = float(rng.uniform(-road / 2 + 0.5, road / 2 - 0.5))
        else:
            side = int(rng.integers(2))
            a = float(rng.uniform(-road / 2 - walks[0] + 0.3, -road / 2 - 0.2) if side == 0
                      else rng.uniform(road / 2 + 0.2, road / 2 + walks[1] - 0.3))
        p = place(a)
        if p is None:
            continue
        u, v, s, z, _ = p
        h = s * float(rng.uniform(1.5, 1.9))
        if h >= 14:
            groups.append((z, [Obj("person", _person(u, v, h), CLOTHES[int(ci)])]))
    for kind, most in (("bare pole", 2), ("traffic light", 3), ("traffic sign", 3)):
        for _ in range(_count(rng, kind, 1, most)):
            side = 1 if rng.random() < 0.5 else -1
            a = side * (road / 2 + 0.35) if rng.random() < 0.7 else (edge[1] - 0.4 if side > 0 else edge[0] + 0.4)
            p = place(a)
            if p is None:
                continue
            u, v, s, z, _ = p
            pole_m = {"bare pole": (5, 8), "traffic light": (3.5, 5), "traffic sign": (2.2, 3)}[kind]
            top = v - s * float(rng.uniform(*pole_m))
            half = max(1.0, s * 0.07)
            if v - top < 12:
                continue
            group = [Obj("pole", _rect(u - half, top, u + half, v), colour["pole"])]
            if kind == "traffic light":
                lw, lh = max(4.5, s * 0.18), max(10.0, s * 0.9)
                group.append(Obj("traffic light", _rect(u - lw, top - 0.8 * lh, u + lw, top + 0.2 * lh), LIGHT_BODY))
                if rng.random() < 0.35:  # a sign under the light
                    r = max(4.0, s * float(rng.uniform(0.25, 0.4)))
                    cy = top + 0.2 * lh + 1.3 * r
                    group.append(Obj("traffic sign", _ellipse(u, cy, r, r, n=16), colour["traffic sign"]))
            elif kind == "traffic sign":
                r = max(4.0, s * float(rng.uniform(0.3, 0.45)))
                group.append(Obj("traffic sign", _ellipse(u, top - 0.6 * r, r, r, n=16), colour["traffic sign"]))
            groups.append((z, group))
    for _ in range(_count(rng, "tree", 1, 6)):
        side = 1 if rng.random() < 0.5 else -1
        a = side * (road / 2 + walks[(side + 1) // 2] * float(rng.uniform(0.5, 0.9)))
        p = place(a)
        if p is None:
            continue
        u, v, s, z, _ = p
        r = s * float(rng.uniform(1.2, 3.0))
        cy = v - s * float(rng.uniform(2.5, 4.5))
        c = _jitter(colour["vegetation"], rng, 15)
        groups.append((z, [Obj("vegetation", _rect(u - max(1.0, s * 0.15), cy, u + max(1.0, s * 0.15), v), c, 0.2),
                           Obj("vegetation", _ellipse(u, cy, r, r * 0.9), c, 0.4)]))
    groups.sort(key=lambda g: -g[0])  # farthest first; a stable sort keeps equal distances in order
    objs += [o for _, g in groups for o in g]
    if rng.random() < 0.5:  # the mirrored street
        objs = [Obj(o.label, [(W - 1 - u, v) for u, v in o.polygon], o.colour, o.shade, o.detail) for o in objs]
    return objs
