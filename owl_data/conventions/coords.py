"""Points and boxes as text: render the corpus geometry in a coordinate convention, parse it back.

The corpus stores geometry as data (normalised to [0, 1] in the stored upright image's frame,
x right, y down, continuous). Exports for other trainers (LLaVA, ShareGPT) must write it into
the text; this module is the single place that does so, in one of three conventions:

========  ===========================================================  ======================
name      text                                                         one unit (normalised)
========  ===========================================================  ======================
``qwen``  point ``(x,y)``; box ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>``,   1/1000
          optionally preceded by ``<|object_ref_start|>phrase<|object_ref_end|>``;
          integers in [0, 1000) (Qwen2-VL, transformers ``models/qwen2_vl`` and the
          Qwen2-VL paper: "coordinates normalised to [0, 1000)")
``norm``  point ``[x,y]``; box ``[x1,y1,x2,y2]``; decimals in [0, 1] with      10^-decimals
          ``decimals`` places (3 by default, Shikra-style)
``pixel`` point ``[x,y]``; box ``[x1,y1,x2,y2]``; integer pixel coordinates     1/W, 1/H
          of the stored image, in [0, W] x [0, H] (Qwen2.5-VL-style absolute pixels)
========  ===========================================================  ======================

Rounding (one rule for every convention): a normalised value v becomes the integer
``q = floor(v * S + 0.5)`` (round half up) on the convention's grid of scale S (1000, 10^d,
or the image side W / H), clamped to ``[0, S - 1]`` for ``qwen`` (its integers stay below
1000) and to ``[0, S]`` otherwise. Parsing gives ``q / S``. Hence ``|parsed - v| <= 0.5``
unit, except for ``qwen`` values above 0.9995, which clamp to 999 and come back within one
unit. Pixel coordinates are continuous like the corpus's (DESIGN.md): column j spans
[j, j + 1) and has its centre at j + 0.5, so a pixel coordinate p maps to p / W exactly as a
source's pixel coordinates do at ingest.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

__all__ = [
    "CONVENTIONS",
    "DEFAULT_CONVENTION",
    "CoordError",
    "Convention",
    "get_convention",
    "render_point",
    "render_box",
    "parse_point",
    "parse_box",
    "render_text",
    "restore_text",
    "unit",
]

DEFAULT_CONVENTION = "qwen"

POINT = "<point>"
BOX = "<box>"

REF_START, REF_END = "<|object_ref_start|>", "<|object_ref_end|>"
BOX_START, BOX_END = "<|box_start|>", "<|box_end|>"

Size = tuple[int, int]  # (W, H) of the stored image, in pixels


class CoordError(ValueError):
    """A convention, size or coordinate text that cannot be used."""


@dataclass(frozen=True)
class Convention:
    """A text convention for points and boxes.

    Attributes:
        name: ``qwen`` | ``norm`` | ``pixel``.
        decimals: places of ``norm`` values (ignored by the others).
        point_space: a rendered point is followed by one space unless it ends the text
            (``"(495,614) What is this?"`` for the corpus text ``"<point>What is this?"``), and
            :func:`restore_text` takes that one space back. False reads exports written before
            the space (their sidecar has no ``point_space``).
    """

    name: str
    decimals: int = 3
    point_space: bool = True

    def __post_init__(self) -> None:
        if self.name not in CONVENTIONS:
            raise CoordError(f"coords={self.name!r}: use one of {', '.join(CONVENTIONS)}")
        if not isinstance(self.decimals, int) or not 1 <= self.decimals <= 9:
            raise CoordError(f"decimals={self.decimals!r}: must be an integer in 1..9")

    # --- the grid ------------------------------------------------------------------------
    def scales(self, size: Size | None) -> tuple[int, int]:
        """Grid scale (S_x, S_y): normalised v <-> integer q = round(v * S)."""
        if self.name == "qwen":
            return 1000, 1000
        if self.name == "norm":
            return 10 ** self.decimals, 10 ** self.decimals
        if size is None or size[0] < 1 or size[1] < 1:
            raise CoordError(f"the pixel convention needs the image size (W, H), got {size!r}")
        return int(size[0]), int(size[1])

    def quantize(self, v: float, scale: int) -> int:
        """Normalised v -> the integer on the grid (round half up, clamped)."""
        if not math.isfinite(v):
            raise CoordError(f"coordinate {v!r} is not finite")
        q = math.floor(v * scale + 0.5)
        top = scale - 1 if self.name == "qwen" else scale
        return min(max(q, 0), top)

    def fmt(self, q: int, scale: int) -> str:
        if self.name == "norm":
            return f"{q / scale:.{self.decimals}f}"
        return str(q)

    def value(self, text: str, scale: int) -> float:
        """Text of one coordinate -> normalised value.

        Raises:
            CoordError: a value off the convention's range (qwen 0..999, norm [0, 1],
                pixel 0..W or 0..H): text no export of this convention writes.
        """
        if self.name == "norm":
            v = float(text)
            if not 0 <= v <= 1:
                raise CoordError(f"coordinate {text[:30]} is outside [0, 1] (norm convention)")
            return v
        q = int(text) if len(text) <= 12 else scale + 1  # 20 digits: off the grid, never a huge int
        top = scale - 1 if self.name == "qwen" else scale
        if not 0 <= q <= top:
            raise CoordError(f"coordinate {text[:30]} is outside 0..{top} ({self.name} convention)")
        return q / scale

    # --- the text ------------------------------------------------------------------------
    @property
    def _num(self) -> str:
        return rf"(\d\.\d{{{self.decimals}}})" if self.name == "norm" else r"(\d+)"

    @cached_property
    def point_re(self) -> re.Pattern[str]:
        n = self._num
        if self.name == "qwen":
            return re.compile(rf"\({n},{n}\)")
        return re.compile(rf"\[{n},{n}\]")

    @cached_property
    def box_re(self) -> re.Pattern[str]:
        n = self._num
        if self.name == "qwen":
            rs, re_, bs, be = (re.escape(t) for t in (REF_START, REF_END, BOX_START, BOX_END))
            phrase = rf"((?:(?!{rs}|{re_}).)*)"  # no nested or stray ref tokens
            return re.compile(rf"(?:{rs}{phrase}{re_})?{bs}\({n},{n}\),\({n},{n}\){be}", re.S)
        return re.compile(rf"()\[{n},{n},{n},{n}\]")  # empty group 1: no phrase

    def describe(self) -> dict[str, object]:
        """What an export records about its convention (sidecar ``coords``)."""
        text = {
            "qwen": "Qwen2-VL: point (x,y); box <|box_start|>(x1,y1),(x2,y2)<|box_end|>, after "
                    "<|object_ref_start|>phrase<|object_ref_end|> in answers; integers in [0, 1000)",
            "norm": f"normalised: point [x,y]; box [x1,y1,x2,y2]; decimals in [0, 1], {self.decimals} places",
            "pixel": "pixels of the stored image: point [x,y]; box [x1,y1,x2,y2]; integers in [0, W] x [0, H]",
        }[self.name]
        return {
            "name": self.name,
            "decimals": self.decimals if self.name == "norm" else None,
            "point_space": self.point_space,
            "text": text,
            "frame": "stored upright image, x right, y down",
            "rounding": "q = floor(v * S + 0.5), clamped to [0, S - 1] (qwen) or [0, S]; parsed as q / S",
            "scale": {"qwen": "1000", "norm": f"10^{self.decimals}", "pixel": "image width / height"}[self.name],
        }


CONVENTIONS: dict[str, str] = {
    "qwen": "Qwen2-VL 0-1000 integers with box and object-ref tokens (default)",
    "norm": "normalised decimals in [0, 1]",
    "pixel": "integer pixels of the stored image",
}


def get_convention(conv: str | Convention) -> Convention:
    """A :class:`Convention` from its name (or itself)."""
    return conv if isinstance(conv, Convention) else Convention(str(conv))


def unit(conv: str | Convention, size: Size | None = None) -> tuple[float, float]:
    """One unit of the convention in normalised coordinates, (u_x, u_y)."""
    sx, sy = get_convention(conv).scales(size)
    return 1 / sx, 1 / sy


def render_point(point: Sequence[float], conv: str | Convention = DEFAULT_CONVENTION,
                 size: Size | None = None) -> str:
    """Normalised ``(x, y)`` -> text, e.g. ``(652,91)`` in ``qwen``."""
    c = get_convention(conv)
    sx, sy = c.scales(size)
    x, y = (c.fmt(c.quantize(float(v), s), s) for v, s in zip(point, (sx, sy)))
    return f"({x},{y})" if c.name == "qwen" else f"[{x},{y}]"


def render_box(box: Sequence[float], conv: str | Convention = DEFAULT_CONVENTION,
               size: Size | None = None, phrase: str | None = None) -> str:
    """Normalised xyxy box -> text; ``phrase`` adds the object reference (``qwen`` only)."""
    c = get_convention(conv)
    if len(box) != 4:
        raise CoordError(f"a box has 4 values (x1, y1, x2, y2), got {list(box)!r}")
    sx, sy = c.scales(size)
    v = [c.fmt(c.quantize(float(b), s), s) for b, s in zip(box, (sx, sy, sx, sy))]
    if c.name != "qwen":
        return f"[{','.join(v)}]"
    ref = f"{REF_START}{phrase}{REF_END}" if phrase is not None else ""
    return f"{ref}{BOX_START}({v[0]},{v[1]}),({v[2]},{v[3]}){BOX_END}"


def _point_of(m: re.Match[str], c: Convention, size: Size | None) -> tuple[float, float]:
    sx, sy = c.scales(size)
    return c.value(m.group(1), sx), c.value(m.group(2), sy)


def _box_of(m: re.Match[str], c: Convention, size: Size | None) -> list[float]:
    sx, sy = c.scales(size)
    return [c.value(m.group(i), s) for i, s in zip(range(2, 6), (sx, sy, sx, sy))]


def parse_point(text: str, conv: str | Convention = DEFAULT_CONVENTION,
                size: Size | None = None) -> tuple[float, float]:
    """The text of one point (exactly) -> normalised ``(x, y)``.

    Raises:
        CoordError: the text is not one point of this convention.
    """
    c = get_convention(conv)
    m = c.point_re.fullmatch(text.strip())
    if m is None:
        raise CoordError(f"{text!r} is not a point in the {c.name} convention")
    return _point_of(m, c, size)


def parse_box(text: str, conv: str | Convention = DEFAULT_CONVENTION,
              size: Size | None = None) -> tuple[list[float], str | None]:
    """The text of one box (exactly) -> (normalised xyxy, phrase or None).

    Raises:
        CoordError: the text is not one box of this convention.
    """
    c = get_convention(conv)
    m = c.box_re.fullmatch(text.strip())
    if m is None:
        raise CoordError(f"{text!r} is not a box in the {c.name} convention")
    return _box_of(m, c, size), (m.group(1) if c.name == "qwen" else None)


def render_text(content: str, conv: str | Convention, size: Size | None = None, *,
                point: Sequence[float] | None = None, box: Sequence[float] | None = None,
                phrase: str | None = None) -> str:
    """Replace the placeholders ``<point>`` and ``<box>`` of ``content`` by their text.

    A placeholder without geometry (``point``/``box`` None) is left as it is; with
    ``conv.point_space`` a point but one ending the text is followed by one space. ``phrase``
    (``qwen`` only) is written as the object reference before each box: pass it for answer
    turns only, where it names what the box is (a question must not get its answer).
    """
    c = get_convention(conv)
    if point is not None and POINT in content:
        text = render_point(point, c, size)
        if c.point_space:  # one space after each point but a last one, taken back by restore_text
            head, last = content.rsplit(POINT, 1)
            content = head.replace(POINT, text + " ") + (text + " " if last else text) + last
        else:
            content = content.replace(POINT, text)
    if box is not None and BOX in content:
        content = content.replace(BOX, render_box(box, c, size, phrase if c.name == "qwen" else None))
    return content


def restore_text(text: str, conv: str | Convention, size: Size | None = None
                 ) -> tuple[str, list[tuple[float, float]], list[tuple[list[float], str | None]]]:
    """Inverse of :func:`render_text`: put ``<box>`` and ``<point>`` back.

    Boxes are found first (their corner pairs would otherwise read as points).

    Returns:
        (text with placeholders, points found in order, (box, phrase) found in order).
    """
    c = get_convention(conv)
    boxes: list[tuple[list[float], str | None]] = []

    def _box(m: re.Match[str]) -> str:
        boxes.append((_box_of(m, c, size), m.group(1) or None))
        return BOX

    text = c.box_re.sub(_box, text)
    points: list[tuple[float, float]] = []

    def _point(m: re.Match[str]) -> str:
        points.append(_point_of(m, c, size))
        return POINT

    text = c.point_re.sub(_point, text)
    if c.point_space:  # the one space render_text wrote after each point
        text = text.replace(POINT + " ", POINT)
    return text, points, boxes
