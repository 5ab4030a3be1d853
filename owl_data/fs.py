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

:func:`output_lock` makes each output one writer's at a time: every writer of ``--out``
(the build's driver, and :func:`staged`: ``mix``, ``show``, ``export``, ``import-llava``)
holds the ``flock`` of ``.<name>.lock`` beside it while it works (its staging folders, a
build's ``.<name>.partial`` included); a second writer fails at once with
:class:`OutputBusyError` naming the holder (pid, host, start time, command line); a lock file
left by a dead process is taken over.

:func:`staged` gives the command a clean staging folder beside ``--out`` and swaps it into
place when the command succeeds (:func:`swap_into_place`: one atomic exchange of the two
folders on Linux, so ``--out`` is never missing and never a mix; the old one is removed);
on any exception, ``KeyboardInterrupt`` included, the staging folder is removed and
``--out`` is untouched. Where the exchange is unavailable the swap is two renames, and the
next writer repairs one a kill left half done (:func:`repair_swap`).

Inside an output, :func:`inside` builds every path whose name comes from data and refuses
one that would leave the folder; state files are written by :func:`write_atomic` and read by
:func:`read_state` (these primitives live in :mod:`owl_data.fsutil`).
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import socket
import sys
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

from owl_data.errors import FieldError
from owl_data.fsutil import (RENAME_EXCHANGE, DamagedStateWarning, PathEscapeError, exchange, inside, read_state,
                             write_atomic)

try:
    import fcntl
except ImportError:  # not POSIX: the O_EXCL lock of output_lock
    fcntl = None  # type: ignore[assignment]

__all__ = ["MANIFEST", "OutputError", "OutputKind", "CORPUS_OUT", "check_out", "spec_paths", "staged", "swap_into_place",
           "OutputBusyError", "output_lock", "lock_path", "repair_swap", "exchange", "RENAME_EXCHANGE",
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


# --- one writer per output, and a commit with no gap --------------------------------------

class OutputBusyError(OutputError):
    """Another running process holds the lock of the output; the message names it."""


def lock_path(out: Path) -> Path:
    """``.<name>.lock`` beside ``out``: the lock file of every writer of ``out``."""
    return Path(out).parent / f".{Path(out).name}.lock"


def _holder(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _busy(out: Path, path: Path, hint: str = "") -> OutputBusyError:
    h = _holder(path)
    who = (f"pid {h.get('pid')} on host {h.get('host')} since {h.get('since')} ({h.get('command')})" if h
           else f"another process (its lock {path} names no holder yet)")
    return OutputBusyError("out", f"out {out} is being written by {who}; wait for it or stop it{hint}")


def _holder_line() -> bytes:
    command = shlex.join([Path(sys.argv[0]).name if sys.argv else "python", *sys.argv[1:]])[:300]
    since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                        "since": since}) + "\n").encode()


def _lock_exclusive(out: Path, path: Path) -> int:
    """Where ``flock`` is unavailable: the lock is the file's existence (``O_EXCL``); one left by
    a process of this host that is no longer running is removed and taken."""
    for _ in range(3):
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            h = _holder(path)
            pid = h.get("pid")
            if h.get("host") != socket.gethostname() or not isinstance(pid, int) or _alive(pid):
                raise _busy(out, path, f" (if it is not running, remove {path})") from None
            path.unlink(missing_ok=True)
    raise _busy(out, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _open_lock_file(path: Path) -> tuple[int, bool]:
    """The lock file opened read-write, and whether this call created it."""
    while True:
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:
            pass
        try:
            return os.open(path, os.O_RDWR), False
        except FileNotFoundError:  # removed by its holder in between: create it
            continue


def _lock(out: Path, path: Path) -> int:
    """The lock file's descriptor, locked (``flock``, else ``O_EXCL``), holding our holder line."""
    while fcntl is not None:
        fd, created = _open_lock_file(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _busy(out, path) from None
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                os.close(fd)
                raise
            if created:  # no flock on this filesystem: the file we created exclusively is the lock
                break
            os.close(fd)
            fd = _lock_exclusive(out, path)
            break
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:  # else its holder removed it as we opened it: open the new one
            break
        os.close(fd)
    else:
        fd = _lock_exclusive(out, path)
    os.ftruncate(fd, 0)  # a dead holder's line (a stale lock) is replaced
    os.write(fd, _holder_line())
    return fd


@contextmanager
def output_lock(out: Path) -> Iterator[Path]:
    """Hold the exclusive lock of ``out`` (its :func:`lock_path`) for the block; yields the lock file.

    Every writer of ``out`` takes it before it touches ``out`` or its staging folders (a build's
    ``.<name>.partial`` included). It is ``fcntl.flock`` on the lock file, so the kernel releases
    it when its holder dies; the file holds one JSON line naming the holder (``pid``, ``host``,
    ``command``, ``since`` in UTC), and a file left by a dead process is taken over silently.
    Where ``flock`` is unavailable (no ``fcntl``, or a filesystem answering ENOLCK/EOPNOTSUPP),
    the lock is the file's exclusive creation instead; a file of this host's dead process is
    taken over, one of another host is reported with the hint to remove it. Once held, a swap
    left half done by a killed writer is repaired (:func:`repair_swap`). The file is removed
    on release.

    Raises:
        OutputBusyError: another running process holds it (the message names it); at once.
        OSError: the lock file cannot be made (a read-only folder, a full disk).
    """
    out = Path(out)
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _lock(out, path)
    try:
        repair_swap(out)
        yield path
    finally:
        path.unlink(missing_ok=True)  # while still held, so no one locks the removed file
        os.close(fd)


def _old_path(out: Path) -> Path:
    return out.parent / f".{out.name}.old"


def repair_swap(out: Path) -> bool:
    """Finish after a writer killed inside the fallback swap of :func:`swap_into_place`; call
    with the lock of ``out`` held. ``out`` missing and ``.<name>.old`` present (the previous
    output, renamed aside whole): it is put back and True returned, with a
    :class:`DamagedStateWarning` (the killed command's new output is discarded: rerun it).
    A leftover ``.<name>.old`` beside a present ``out`` is removed."""
    out = Path(out)
    old = _old_path(out)
    if old.is_symlink() or not old.is_dir():
        return False
    if not os.path.lexists(out):
        os.rename(old, out)
        warnings.warn(f"{out} was missing after an interrupted commit: the previous output was restored "
                      f"from {old}", DamagedStateWarning, stacklevel=2)
        return True
    shutil.rmtree(old, ignore_errors=True)
    return False


def swap_into_place(staging: Path, out: Path) -> None:
    """Move a finished ``staging`` folder to ``out``, replacing an old ``out``, with no moment at
    which ``out`` is missing or mixed; call with the lock of ``out`` held (:func:`output_lock`).

    ``out`` absent: one rename. Otherwise the two folders are exchanged atomically
    (:func:`exchange`), and the old output, now at ``staging``, is removed (a reader holding one
    of its files open keeps reading the old version). Where the exchange is unavailable, the
    fallback is two renames (``out`` -> ``.<name>.old``, ``staging`` -> ``out``), with a moment
    at which ``out`` is missing: an error in between puts the old one back at once, and a kill
    in between is repaired by the next writer of ``out`` (:func:`repair_swap`).
    """
    staging, out = Path(staging), Path(out)
    if not os.path.lexists(out):
        os.rename(staging, out)
    elif exchange(staging, out):
        shutil.rmtree(staging, ignore_errors=True)
    else:
        old = _old_path(out)
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        try:
            os.replace(staging, out)
        except BaseException:
            os.replace(old, out)
            raise
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
    """A clean staging folder beside ``out``, swapped into place when the block completes, all
    under the lock of ``out`` (:func:`output_lock`).

    On any exception (``KeyboardInterrupt`` included) the staging folder is removed and the
    exception propagates; ``out`` is untouched.

    Raises:
        OutputBusyError: another process is writing ``out`` (nothing touched).
    """
    out = Path(out)
    with output_lock(out):
        staging = staging_folder(out, tag)
        try:
            yield staging
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        swap_into_place(staging, out)
