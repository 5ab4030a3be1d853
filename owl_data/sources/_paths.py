"""Resolving paths found inside annotation files, without ever leaving the source root."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from owl_data.errors import RejectError

__all__ = ["UnsafePath", "resolve_inside"]


class UnsafePath(RejectError):
    """A path from an annotation that is absolute or leads outside the source root.

    Always raised with reason :attr:`reason` (``path_outside_source``); ``detail`` says
    which path and why.
    """

    reason = "path_outside_source"


def resolve_inside(root: Path, base: Path, rel: str) -> tuple[Path, str]:
    """Resolve ``rel`` (from an annotation file) against ``base``, inside ``root``.

    Args:
        root: the ``--source`` root; nothing outside it is ever opened.
        base: the folder ``rel`` is relative to (the annotation file's folder, or an
            images root), itself inside ``root``.
        rel: the path as written in the annotation (POSIX separators expected).

    Returns:
        (absolute path, POSIX path relative to ``root``).

    Raises:
        UnsafePath: ``rel`` is absolute (POSIX or Windows drive), contains a NUL byte, or
            resolves (symlinks included) outside ``root``.
    """
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise UnsafePath(UnsafePath.reason, f"not a usable relative path: {rel!r}")
    if PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).is_absolute() or PureWindowsPath(rel).drive:
        raise UnsafePath(UnsafePath.reason, f"absolute path {rel!r}")
    root_r = Path(os.path.realpath(root))
    target = Path(os.path.realpath(Path(base) / rel))
    try:
        inside = target.relative_to(root_r)
    except ValueError:
        raise UnsafePath(UnsafePath.reason, f"{rel!r} leads outside {root}") from None
    return target, inside.as_posix()
