"""Numbers read from annotation files, converted through one checked path.

JSON allows integers of any size (``10**400``) and some parsers accept ``1e999`` (inf) or
``NaN``; Python's ``float()``, ``math.isfinite`` and ``numpy.asarray(dtype=float64)`` raise
``OverflowError`` on the first and silently carry the others. Every reader converts the
numbers it takes from a file with :func:`finite_float` / :func:`pixel_int` (or tests them with
:func:`is_finite_number`), so a bad number becomes a reject with a reason, never a traceback.
Config fields are checked by :func:`owl_data.errors.require` instead (a bad setting, not a reject).
"""

from __future__ import annotations

import math
from typing import Any

from owl_data.errors import RejectError

__all__ = ["NumberError", "finite_float", "is_finite_number", "pixel_int"]


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
