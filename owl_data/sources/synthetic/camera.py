"""The level pinhole camera of the drawn street scenes: projection, clipping, ground places.

Units and frames: the world in metres, the street's coordinates ``a`` across it (0 on the
road's centre line) and ``b`` along it; camera coordinates x right, y down, z forward
(metres), the camera ``height`` metres above the flat ground; image pixels u
right, v down, with integer polygon vertices. Used by :mod:`owl_data.sources.synthetic.layout`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Camera", "Point", "project", "ground_polygon", "facade_polygon", "along_street",
           "Z_NEAR", "Z_OBJECTS", "FAR", "MARGIN"]

Z_NEAR = 0.2          # m, the camera's near clipping plane
Z_OBJECTS = (4.0, 60.0)  # m, distances at which billboards are placed
FAR = 400.0           # m, how far the street runs each way along b
MARGIN = 2            # px, frame margin of clipped polygons

Point = tuple[int, int]


@dataclass(frozen=True)
class Camera:
    """A level pinhole camera (no roll, the horizon one image row) standing in the street."""

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


def project(cam: Camera, pts3: list[tuple[float, float, float]], W: int, H: int) -> list[Point] | None:
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


def ground_polygon(cam: Camera, a0: float, a1: float, b0: float, b1: float, W: int, H: int) -> list[Point] | None:
    """The ground rectangle a0..a1 across by b0..b1 along the street (m) in a W x H frame, or None."""
    corners = [cam.to_cam(a, b) for a, b in ((a0, b0), (a1, b0), (a1, b1), (a0, b1))]
    return project(cam, [(x, cam.height, z) for x, z in corners], W, H)


def facade_polygon(cam: Camera, a: float, b0: float, b1: float, height: float, W: int, H: int) -> list[Point] | None:
    """A vertical facade ``height`` m high on the line ``a``, from b0 to b1 along the street, or None."""
    (x0, z0), (x1, z1) = cam.to_cam(a, b0), cam.to_cam(a, b1)
    top = cam.height - height
    return project(cam, [(x0, cam.height, z0), (x1, cam.height, z1), (x1, top, z1), (x0, top, z0)], W, H)


def along_street(cam: Camera, a: float, rng: np.random.Generator, W: int) -> tuple[float, float, float] | None:
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
