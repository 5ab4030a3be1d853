"""Filesystem primitives of the writers: paths inside an output, state files, folder exchange.

Re-exported by :mod:`owl_data.fs` (import them from there). :func:`inside` builds every path
whose name comes from data (an export's ``images/<image_id>.<ext>``) and refuses one that
would leave the folder. State files are written by :func:`write_atomic` (whole or absent) and
read by :func:`read_state`, which discards a damaged one with a :class:`DamagedStateWarning`.
:func:`exchange` swaps two folders in one atomic step (Linux ``renameat2``).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import sys
import warnings
from pathlib import Path
from typing import Callable

__all__ = ["PathEscapeError", "inside", "write_atomic", "DamagedStateWarning", "read_state", "exchange",
           "RENAME_EXCHANGE"]


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


RENAME_EXCHANGE = 2  # <linux/fs.h>
_AT_FDCWD = -100
_SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276, "riscv64": 276, "ppc64le": 357, "s390x": 347}


def _renameat2() -> Callable[..., int] | None:
    """libc's ``renameat2`` (glibc >= 2.28), else the raw system call, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    fn = getattr(libc, "renameat2", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        return fn
    nr = _SYS_RENAMEAT2.get(platform.machine())
    if nr is None:
        return None
    return lambda a, b, c, d, flags: libc.syscall(ctypes.c_long(nr), ctypes.c_int(a), ctypes.c_char_p(b),
                                                  ctypes.c_int(c), ctypes.c_char_p(d), ctypes.c_uint(flags))


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(..., RENAME_EXCHANGE)``).

    Returns:
        True once swapped; False, with nothing changed, where the platform lacks the call or
        the filesystem refuses it (EINVAL, ENOSYS, EOPNOTSUPP).

    Raises:
        OSError: any other failure (a missing path, permissions), with its errno.
    """
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))
