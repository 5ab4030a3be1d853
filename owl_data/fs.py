"""Checking a writer command's ``--out`` before anything is written, and replacing it atomically.

Refusals raise :class:`OutputError`, a :class:`~owl_data.errors.FieldError` of field ``out``
(the CLI shows it as ``--out``).

Every command that writes a folder (``build``, ``import-llava``, ``mix``, ``show``,
``export``) replaces ``--out`` when it completes, so a wrong ``--out`` would delete what is
there. :func:`check_out` refuses, before anything is created:

- ``--out`` given as ``""`` or ``.``, the current directory, or a folder holding it;
- an existing ``--out`` that is a file or a symbolic link;
- an existing folder that is neither empty nor a previous output of the same command:
  one whose marker file (:class:`OutputKind`: ``manifest.json`` of a corpus, ``mix.json``
  of format ``owl-mix/1``, ``.owl-gallery``, ``owl_export.json``) is the command's own and
  that holds nothing the command does not write (a user's extra file makes it refuse, by
  name, instead of deleting it);
- an ``--out`` inside a folder the command reads or holding one (a build's source roots:
  each source spec's path parts, the text before ``?`` split on ``:``; the corpus of
  ``mix``, ``show``, ``export``; the export read by ``import-llava``).

:func:`staged` gives the command a clean staging folder beside ``--out`` and swaps it into
place when the command succeeds (the old output renamed aside, the new one renamed in, the
old one removed: no stale file survives, readers never see a mix); on any exception,
``KeyboardInterrupt`` included, the staging folder is removed and ``--out`` is untouched.

Inside an output, :func:`inside` builds every path whose name comes from data (an export's
``images/<image_id>.<ext>``) and refuses one that would leave the folder. State files of a
resumable command are written by :func:`write_atomic` (whole or absent) and read by
:func:`read_state`, which discards a damaged one with a :class:`DamagedStateWarning`.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

from owl_data.errors import FieldError

__all__ = ["MANIFEST", "OutputError", "OutputKind", "CORPUS_OUT", "check_out", "spec_paths", "staged", "swap_into_place",
           "json_marker", "PathEscapeError", "inside", "write_atomic", "DamagedStateWarning", "read_state"]

MANIFEST = "manifest.json"  # a corpus's marker and manifest (the one definition; owl_data.corpus re-exports it)


class OutputError(FieldError):
    """An output folder (field ``out``, the commands' ``--out``) the command refuses to write
    (nothing has been touched); the message starts with ``out``."""


@dataclass(frozen=True)
class OutputKind:
    """How a command recognises its own previous output.

    Attributes:
        what: what the command writes, for messages (``an Owl-VL corpus``).
        marker: the file that marks a previous output.
        recognise: the marker's path -> True when it is this command's marker.
        owned: a top-level name -> True when the command writes such an entry.
        example: a folder name for the messages' ``e.g. `out` NAME``.
    """

    what: str
    marker: str
    recognise: Callable[[Path], bool]
    owned: Callable[[str], bool]
    example: str


def json_marker(check: Callable[[dict], bool]) -> Callable[[Path], bool]:
    """A ``recognise`` that reads the marker as a JSON object and applies ``check``."""

    def recognise(path: Path) -> bool:
        if path.is_symlink() or not path.is_file():
            return False
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError):
            return False
        return isinstance(doc, dict) and check(doc)

    return recognise


_TABLE_DIRS = ("images", "image_refs", "point_vqa", "vqa", "caption", "grounding", "rejects")
CORPUS_OUT = OutputKind(
    what="an Owl-VL corpus", marker=MANIFEST,
    recognise=json_marker(lambda d: "schema_version" in d and "rows" in d),
    owned=lambda name: name in (MANIFEST, "README.md", *_TABLE_DIRS),
    example="corpus")


def spec_paths(spec: str) -> list[Path]:
    """The filesystem paths named by a source spec, resolved (symlinks followed)."""
    head = spec.partition("?")[0]
    return [Path(os.path.realpath(Path(p).expanduser())) for p in head.split(":") if p.strip()]


def _inside(a: Path, b: Path) -> bool:
    """a == b or a lies under b."""
    return a == b or b in a.parents


def check_out(out: Path | str, source_specs: Iterable[str] = (), kind: OutputKind = CORPUS_OUT, *,
              reads: Mapping[str, Path | str] | None = None) -> Path:
    """Check ``out`` can be replaced by the command's output; return it unchanged.

    Args:
        out: the ``--out`` given.
        source_specs: build source specs (their path parts are folders read).
        kind: what the command writes and how it recognises a previous output.
        reads: other folders the command reads, by role (``{"the corpus": CORPUS}``).

    Raises:
        OutputError: the reasons in the module docstring, with the fix.
    """
    text = str(out).strip()
    if text in ("", "."):
        raise OutputError("out", f"out {str(out)!r}: give the output folder a name, e.g. `out` {kind.example}")
    out = Path(out).expanduser()
    real = Path(os.path.realpath(out))
    cwd = Path(os.path.realpath(os.getcwd()))
    if _inside(cwd, real):
        raise OutputError("out", f"out {out}: it is (or holds) the current directory, which the command would "
                          f"replace; give a new folder, e.g. `out` {kind.example}")
    named = [(sp, "source path") for spec in source_specs for sp in spec_paths(spec)]
    named += [(Path(os.path.realpath(Path(p).expanduser())), role) for role, p in (reads or {}).items()]
    for sp, role in named:
        if _inside(real, sp) or _inside(sp, real):
            where = "inside" if _inside(real, sp) else "holding"
            raise OutputError("out", f"out {out}: {where} {role} {sp}; write the output outside every folder "
                              "the command reads")
    if out.is_symlink():
        raise OutputError("out", f"out {out} is a symbolic link; give the folder itself")
    if out.exists():
        if not out.is_dir():
            raise OutputError("out", f"out {out} exists and is not a folder; the command will not replace it")
        entries = sorted(p.name for p in out.iterdir())
        if entries:
            if not kind.recognise(out / kind.marker):
                raise OutputError("out", f"out {out} exists, is not empty and is not {kind.what} (not an earlier "
                                  f"result: no {kind.marker} of its own); the command replaces `out`, so give a new or "
                                  "empty folder")
            foreign = [n for n in entries if not kind.owned(n)]
            if foreign:
                shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
                raise OutputError("out", f"out {out} is {kind.what} but also holds {shown}, which the command "
                                  "does not write and would delete; move them out or give a new folder")
    return out


def swap_into_place(staging: Path, out: Path) -> None:
    """Move a finished ``staging`` folder to ``out`` atomically (an old ``out`` is replaced).

    Readers see the old output or the new one, never a mix: the old folder is renamed aside,
    the new one renamed into place, then the old one removed.
    """
    staging, out = Path(staging), Path(out)
    old = out.parent / f".{out.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)


def staging_folder(out: Path, tag: str = "partial") -> Path:
    """A clean, empty folder ``.<name>.<tag>`` beside ``out``."""
    out = Path(out)
    staging = out.parent / f".{out.name}.{tag}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


@contextmanager
def staged(out: Path, tag: str = "partial") -> Iterator[Path]:
    """A clean staging folder beside ``out``, swapped into place when the block completes.

    On any exception (``KeyboardInterrupt`` included) the staging folder is removed and the
    exception propagates; ``out`` is untouched.
    """
    staging = staging_folder(out, tag)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    swap_into_place(staging, Path(out))


# --- paths written inside an output, and state files ------------------------------------

class PathEscapeError(ValueError):
    """A file a command was about to write whose path would leave its output folder."""


def inside(root: Path, rel: str | Path) -> Path:
    """``root / rel``, checked to stay inside ``root``: every path a command writes under its
    output is built through here, so a name taken from data (an ``image_id``, a split) can
    never write elsewhere.

    Raises:
        PathEscapeError: ``rel`` is empty, absolute, has a ``..`` part, or resolves (through a
            symbolic link) outside ``root``; nothing is written.
    """
    root, relp = Path(root), Path(rel)
    path = root / relp
    real_root = Path(os.path.realpath(root))
    if (str(rel) in ("", ".") or relp.is_absolute() or ".." in relp.parts
            or real_root not in Path(os.path.realpath(path)).parents):
        raise PathEscapeError(f"refusing to write {str(rel)!r}: the path leaves the output folder {root}")
    return path


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file beside it, flushed,
    then ``os.replace``): a kill or a full disk leaves the old file or the new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class DamagedStateWarning(UserWarning):
    """A resume state file that could not be read was discarded (that part starts over)."""


def read_state(path: Path, check: Callable[[object], bool], what: str = "resume state"):
    """The JSON value of a state file, or None when it is absent; a file that does not read,
    parse or pass ``check`` (the expected shape) is discarded with one
    :class:`DamagedStateWarning` naming it, and None returned (start that part over)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
        ok = check(value)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        value, ok = None, False
    if ok:
        return value
    warnings.warn(f"{path}: damaged {what} (empty, truncated or not of the expected shape) discarded; "
                  "that part starts over", DamagedStateWarning, stacklevel=2)
    return None

