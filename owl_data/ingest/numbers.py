"""Numbers read from annotation files, converted through one checked path.

JSON allows integers of any size (``10**400``) and some parsers accept ``1e999`` (inf) or
``NaN``; Python's ``float()``, ``math.isfinite`` and ``numpy.asarray(dtype=float64)`` raise
``OverflowError`` on the first and silently carry the others. Every reader converts the
numbers it takes from a file with :func:`finite_float` / :func:`pixel_int` (or tests them with
:func:`is_finite_number`), so a bad number becomes a reject with a reason, never a traceback.
Config dataclasses check their fields with :func:`require_int` / :func:`require_number`.
"""

from __future__ import annotations

import math
from typing import Any

from owl_data.errors import RejectError

__all__ = ["NumberError", "finite_float", "is_finite_number", "pixel_int", "require_int", "require_number"]


class NumberError(RejectError):
    """A value that is not a usable number; ``reason`` is ``not_a_number`` or ``non_finite``.

    Always raised with a ``detail``, so ``str(err)`` is ``"reason: detail"``.
    """


def finite_float(v: Any, what: str = "value") -> float:
    """``v`` as a finite float.

    Raises:
        NumberError: ``not_a_number`` (a bool, string, None, list...) or ``non_finite`` (NaN,
            infinity, or an integer too large for a float).
    """
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise NumberError("not_a_number", f"{what} {_short(v)} is not a number")
    try:
        f = float(v)
    except OverflowError:
        raise NumberError("non_finite", f"{what} {_short(v)} is too large for a float") from None
    if not math.isfinite(f):
        raise NumberError("non_finite", f"{what} {_short(v)} is not finite")
    return f


def is_finite_number(v: Any) -> bool:
    """True when :func:`finite_float` accepts ``v``."""
    try:
        finite_float(v)
    except NumberError:
        return False
    return True


def pixel_int(v: Any, what: str = "size") -> int:
    """A positive integral pixel count (``500`` or ``500.0``).

    Raises:
        NumberError: ``not_a_number`` / ``non_finite`` as :func:`finite_float`, or
            ``not_a_number`` for a fraction or a value below 1.
    """
    f = finite_float(v, what)
    if f < 1 or not f.is_integer():
        raise NumberError("not_a_number", f"{what} {_short(v)} is not a positive whole number of pixels")
    return int(f)


def _short(v: Any) -> str:
    """repr of ``v`` cut to 60 characters (a 400-digit integer stays readable)."""
    try:
        r = repr(v)
    except ValueError:  # int too large for repr under Python's digit limit
        return f"<int of {v.bit_length()} bits>"
    return r if len(r) <= 60 else r[:57] + "..."


# --- configuration fields --------------------------------------------------------------


def require_int(field: str, v: Any, lo: int, hi: int | None = None) -> int:
    """Check a config field holds an integer (not a bool) in ``lo..hi``.

    Raises:
        ValueError: naming the field, the value and what to write instead.
    """
    rng = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{field}={_short(v)}: must be an integer {rng} (got {type(v).__name__})")
    if v < lo or (hi is not None and v > hi):
        raise ValueError(f"{field}={_short(v)}: must be an integer {rng}")
    return v


def require_number(field: str, v: Any, lo: float, hi: float | None = None, *, hi_open: bool = False) -> float:
    """Check a config field holds a finite number (int or float, not a bool) in ``[lo, hi]``
    (``[lo, hi)`` when ``hi_open``).

    Raises:
        ValueError: naming the field, the value and what to write instead.
    """
    rng = f"in [{lo}, {hi}{')' if hi_open else ']'}" if hi is not None else f">= {lo}"
    try:
        f = finite_float(v, field)
    except NumberError:
        raise ValueError(f"{field}={_short(v)}: must be a finite number {rng} (got {type(v).__name__})") from None
    if f < lo or (hi is not None and (f >= hi if hi_open else f > hi)):
        raise ValueError(f"{field}={_short(v)}: must be a number {rng}")
    return f
