"""Checking the build's ``--out`` folder before anything is written.

A build replaces ``--out`` when it completes (README "Commands"), so a wrong ``--out`` would
delete what is there. :func:`check_out` refuses, before any folder is created:

- ``--out`` given as ``""`` or ``.``, the current directory, or a folder holding it;
- an existing ``--out`` that is a file, a symbolic link, or a folder that is neither empty
  nor an Owl-VL corpus (no ``manifest.json``);
- an ``--out`` inside a source root or holding one: each source spec's path parts (the text
  before ``?``, split on ``:``, e.g. both sides of ``coco=IMAGES:ANN.json``), resolved.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

__all__ = ["OutputError", "check_out", "spec_paths"]

MANIFEST = "manifest.json"


class OutputError(ValueError):
    """An ``--out`` the build refuses to write (nothing has been touched)."""


def spec_paths(spec: str) -> list[Path]:
    """The filesystem paths named by a source spec, resolved (symlinks followed)."""
    head = spec.partition("?")[0]
    return [Path(os.path.realpath(Path(p).expanduser())) for p in head.split(":") if p.strip()]


def _inside(a: Path, b: Path) -> bool:
    """a == b or a lies under b."""
    return a == b or b in a.parents


def check_out(out: Path | str, source_specs: Iterable[str]) -> Path:
    """Check ``out`` can be replaced by a corpus; return it unchanged.

    Raises:
        OutputError: the reasons in the module docstring, with the fix.
    """
    text = str(out).strip()
    if text in ("", "."):
        raise OutputError(f"--out {str(out)!r}: give the corpus folder a name, e.g. --out corpus")
    out = Path(out).expanduser()
    real = Path(os.path.realpath(out))
    cwd = Path(os.path.realpath(os.getcwd()))
    if _inside(cwd, real):
        raise OutputError(f"--out {out}: it is (or holds) the current directory, which the build "
                          "would replace; give a new folder, e.g. --out corpus")
    for spec in source_specs:
        for sp in spec_paths(spec):
            if _inside(real, sp) or _inside(sp, real):
                where = "inside" if _inside(real, sp) else "holding"
                raise OutputError(f"--out {out}: {where} source path {sp}; write the corpus outside "
                                  "every source folder")
    if out.is_symlink():
        raise OutputError(f"--out {out} is a symbolic link; give the folder itself")
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"--out {out} exists and is not a folder; the build will not replace it")
        if not (out / MANIFEST).is_file() and any(out.iterdir()):
            raise OutputError(f"--out {out} exists, is not empty and is not an Owl-VL corpus (no "
                              f"{MANIFEST}); the build replaces --out, so give a new or empty folder")
    return out
