"""The paints of the drawn default scenes, each with the colour name the task files give it.

One table per kind of object, a record per paint: the layout draws from these tables
(:mod:`owl_data.sources.synthetic.layout`), the renderer paints with them
(:mod:`owl_data.sources.synthetic.scenes`) and the task writer names an object's colour by
the paint its pixels are nearest to (:mod:`owl_data.sources.synthetic.tasks`), so a colour
and its name cannot drift apart. RGB values are 8-bit sRGB triples.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CarPaint", "Paint", "CAR_PAINTS", "CLOTHES_PAINTS", "WHEEL", "SKIN",
           "CAR_COLOURS", "CAR_WINDOWS", "CAR_COLOUR_NAMES", "CLOTHES", "CLOTHES_NAMES"]

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Paint:
    """A named paint: ``name`` is what a caption or answer calls ``rgb``."""

    name: str
    rgb: RGB


@dataclass(frozen=True)
class CarPaint:
    """A car's body paint and its window glass, a shade of the body with the same name, so a
    car of which mostly the cabin shows (cut by the frame, or behind a nearer car) still reads
    as its colour."""

    name: str
    body: RGB
    window: RGB


CAR_PAINTS: tuple[CarPaint, ...] = (
    CarPaint("red", (200, 30, 30), (150, 35, 40)),
    CarPaint("blue", (30, 60, 190), (25, 45, 140)),
    CarPaint("white", (235, 235, 235), (215, 222, 230)),
    CarPaint("black", (25, 25, 25), (44, 46, 50)),
    CarPaint("yellow", (230, 200, 40), (170, 148, 30)),
    CarPaint("green", (60, 150, 70), (40, 110, 50)),
)
"""Car colours; no two cars of a frame share one."""

CLOTHES_PAINTS: tuple[Paint, ...] = (
    Paint("dark blue", (40, 40, 120)),
    Paint("red", (180, 40, 40)),
    Paint("black", (30, 30, 30)),
    Paint("white", (220, 220, 210)),
    Paint("green", (60, 120, 60)),
    Paint("brown", (110, 65, 30)),
)
"""Clothing colours of the people; no two people of a frame share one."""

WHEEL: RGB = (20, 20, 20)
"""Wheels of every car (no colour name: never what a car's colour is read from)."""
SKIN: RGB = (224, 172, 140)
"""Heads of every person (no colour name)."""

# column views of the tables, for code that wants one field
CAR_COLOURS: tuple[RGB, ...] = tuple(p.body for p in CAR_PAINTS)
CAR_WINDOWS: tuple[RGB, ...] = tuple(p.window for p in CAR_PAINTS)
CAR_COLOUR_NAMES: tuple[str, ...] = tuple(p.name for p in CAR_PAINTS)
CLOTHES: tuple[RGB, ...] = tuple(p.rgb for p in CLOTHES_PAINTS)
CLOTHES_NAMES: tuple[str, ...] = tuple(p.name for p in CLOTHES_PAINTS)
