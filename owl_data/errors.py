"""The project's two error kinds and its one field check (imports nothing else of the project).

- :class:`RejectError`: one bad *item* (an image, an annotation, a number, a row). It carries the
  reject ``reason`` (a short snake_case key, the ``reason`` column of the ``rejects`` table) and a
  human ``detail``; the build catches it per item and writes a reject row, so one bad item never
  ends a run. Every per-item error of the data engine (geometry, images, numbers, frames, dropped
  rows) is this class or a subclass of it.
- :class:`FieldError`: a bad *setting*. It names the config ``field`` (never a command-line flag:
  the CLIs map fields to their flags in one table each, :data:`owl_data.cli.app.FLAGS` and
  :data:`owl_train.cli.app.FLAGS`), so the same error reads right from Python, YAML and the shell.

Both subclass ``ValueError`` (STYLE: domain exceptions subclass built-ins), so callers that
catch ``ValueError`` keep working.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, Union

__all__ = ["FieldError", "RejectError", "check_field_types", "exc_text", "flag_message", "without_addresses", "require", "short_repr"]


class RejectError(ValueError):
    """One unusable item; ``reason`` is its reject reason, ``detail`` says what was found.

    ``str(err)`` is ``"reason: detail"`` (``"reason"`` alone when there is no detail).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class FieldError(ValueError):
    """A setting that is invalid; ``field`` names the config field (a dotted path for a nested
    section, e.g. ``points.per_instance``), ``str(err)`` is the whole message."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


_QUOTED = re.compile(r"`([a-z_]+)`")


def flag_message(msg: str | BaseException, flags: typing.Mapping[str, str]) -> str:
    """``msg`` in a CLI's words (its ``FLAGS`` table, field -> flag): a :class:`FieldError`'s
    leading field name, and the fields it (or a plain string) names in backquotes
    (```tasks```), become their flags; any other exception is ``str(msg)`` unchanged.

    >>> flag_message(FieldError("num_samples", "num_samples and `epochs` both set"), {"num_samples": "-n", "epochs": "-e"})
    '-n and -e both set'
    """
    text = str(msg)
    if isinstance(msg, BaseException) and not isinstance(msg, FieldError):
        return text
    if isinstance(msg, FieldError) and msg.field in flags and re.match(rf"{re.escape(msg.field)}\b", text):
        text = flags[msg.field] + text[len(msg.field):]
    return _QUOTED.sub(lambda m: flags.get(m.group(1), m.group(0)), text)


def short_repr(v: Any, limit: int = 60) -> str:
    """``repr(v)`` cut to ``limit`` characters; an int past Python's digit limit (whose repr raises
    ``ValueError``) is shown as ``<int of N bits>``."""
    try:
        r = repr(v)
    except ValueError:
        return f"<int of {v.bit_length()} bits>"
    return r if len(r) <= limit else r[: limit - 3] + "..."


def require(cond: bool, field: str, value: Any, fix: str, what: str = "config field") -> None:
    """Raise :class:`FieldError` ``"<what> <field>=<value> is invalid: <fix>"`` unless ``cond``
    (the value as :func:`short_repr`). A ``what`` ending in ``.`` is a class name joined to the
    field without a space (``what="DataConfig."`` -> ``"DataConfig.max_length=4 is invalid: …"``)."""
    if not cond:
        name = f"{what}{field}" if what.endswith(".") else f"{what} {field}"
        raise FieldError(field, f"{name}={short_repr(value)} is invalid: {fix}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _matches(v: Any, tp: Any) -> bool:
    """Whether ``v`` has annotated type ``tp`` (int, float, str, bool, None, X | None, tuple[X, ...])."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return any(_matches(v, a) for a in typing.get_args(tp))
    if tp is type(None) or tp is None:
        return v is None
    if tp is bool:
        return isinstance(v, bool)
    if tp is int:
        return _is_int(v)
    if tp is float:
        return _is_number(v)
    if tp is str:
        return isinstance(v, str)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(v, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(x, args[0]) for x in v)
        return len(v) == len(args) and all(_matches(x, a) for x, a in zip(v, args))
    if origin is typing.Literal:
        return v in typing.get_args(tp)
    if isinstance(tp, type):
        return isinstance(v, tp)
    return True  # an annotation this check does not model: left to the class's own checks


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        parts = [a for a in typing.get_args(tp) if a is not type(None)]
        opt = len(parts) < len(typing.get_args(tp))
        text = " or ".join(_describe(a) for a in parts)
        return f"{text} (or leave it unset)" if opt else text
    if origin is tuple:
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return f"a list of {getattr(inner, '__name__', str(inner))} values"
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def check_field_types(obj: Any, what: str = "config field", skip: tuple[str, ...] = ()) -> None:
    """Check every field of dataclass instance ``obj`` against its annotation.

    Types come from the dataclass annotations (``typing.get_type_hints``): ``int`` takes no bool,
    ``float`` takes ints and floats that are finite, ``X | None`` takes None, ``tuple[X, ...]``
    checks each element. Fields named in ``skip`` are left to the class's own checks.

    Raises:
        FieldError: the first field whose value does not have its declared type; the message is
            ``"<what> <name>=<value!r> is invalid: use <type>"``.
    """
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        if f.name in skip or f.name not in hints:
            continue
        v = getattr(obj, f.name)
        tp = hints[f.name]
        require(_matches(v, tp), f.name, v, f"use {_describe(tp)}", what)


_ADDRESS = re.compile(r"(<[^<>]*) at 0x[0-9a-fA-F]+>")  # a default repr: <... object at 0x7f...>


def without_addresses(text: str) -> str:
    """``text`` with object addresses (``<_io.BytesIO object at 0x7f...>`` in Pillow's messages)
    removed: a reject detail is corpus content, so it must be the same in every run."""
    return _ADDRESS.sub(r"\1>", text)


def exc_text(exc: BaseException, limit: int | None = None) -> str:
    """``TypeName: message`` of an exception for a reject detail, the message cut to ``limit``
    characters and without object addresses (:func:`without_addresses`)."""
    return f"{type(exc).__name__}: {without_addresses(str(exc))[:limit]}"
