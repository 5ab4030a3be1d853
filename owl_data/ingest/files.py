"""Opening input files: regular files only, size checked by ``fstat`` before any byte is read.

Every reader opens every file it reads (images, label maps, annotation JSON/JSONL/text,
pickles) through :func:`open_regular` or :func:`read_regular`, so a FIFO, a device or a folder
named like a data file is refused at once instead of blocking the build, and a file over the
size limit is refused before it is read.

Conventions:
    - The file is opened with ``O_NONBLOCK`` (opening a FIFO that has no writer then returns at
      once) and checked on the open descriptor (``fstat``), so there is no window between
      the check and the read; the flag is cleared before reading a regular file.
    - Reasons (``what`` is ``image``, ``annotation``, ...): ``missing_<what>``,
      ``unreadable_<what>``, ``not_a_regular_file``, ``file_too_large``.
    - Content digests (the resume check of build chunks): :func:`read_recorded` reads a file,
      hashes its bytes once (sha256) and notes ``(path, digest)`` in the active
      :func:`recording_reads` log; :func:`file_digest` computes the same digest later by
      streaming the file, so a file whose bytes changed (same size and mtime or not) is seen.
      A file that could not be read has a marker (``!missing``, ``!unreadable``,
      ``!not_a_regular_file``, ``!file_too_large``) instead of a hex sha256.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO, Iterator

from owl_data.errors import RejectError

__all__ = ["FileProblem", "open_regular", "read_regular", "read_recorded", "recording_reads", "file_digest",
           "DEFAULT_MAX_FILE_BYTES"]

DEFAULT_MAX_FILE_BYTES = 256 * 2**20
"""Default size limit of an image file (the build's ``max_file_bytes``): 256 MiB."""


class FileProblem(RejectError):
    """A file that cannot be opened for reading; ``reason`` as in the module docstring."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a folder"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: Path | str, *, max_bytes: int | None = None, what: str = "file") -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular file of at most ``max_bytes`` bytes.

    Args:
        path: the file (symlinks followed; callers check containment first).
        max_bytes: size limit checked from ``fstat`` before reading; None for no limit.
        what: the word in the reasons ``missing_<what>`` and ``unreadable_<what>``.

    Raises:
        FileProblem: ``missing_<what>`` (absent), ``not_a_regular_file`` (FIFO, folder,
            device, socket), ``file_too_large`` (over ``max_bytes``), ``unreadable_<what>``
            (any other OS error, e.g. permission denied).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileProblem(f"missing_{what}", f"{path} not found") from None
    except IsADirectoryError:
        raise FileProblem("not_a_regular_file", f"{path} is a folder, not a regular file") from None
    except OSError as exc:
        raise FileProblem(f"unreadable_{what}", f"{path}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileProblem("not_a_regular_file", f"{path} is {_kind(st.st_mode)}, not a regular file")
        if max_bytes is not None and st.st_size > max_bytes:
            raise FileProblem("file_too_large", f"{path} is {st.st_size} bytes, over the limit of {max_bytes} "
                                                "(max_file_bytes)")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path | str, *, max_bytes: int | None = None, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` bytes (see :func:`open_regular`).

    A file that grows past ``max_bytes`` between the check and the read is refused too: at
    most ``max_bytes + 1`` bytes are ever read.

    Raises:
        FileProblem: as :func:`open_regular`; ``unreadable_<what>`` for an error while reading.
    """
    with open_regular(path, max_bytes=max_bytes, what=what) as f:
        try:
            # read the size fstat gives (plus one byte, to see growth), never a buffer of the
            # limit: ``read(n)`` allocates n bytes up front, 256 MiB per file by default
            limit = None if max_bytes is None else max_bytes + 1
            first = os.fstat(f.fileno()).st_size + 1
            first = first if limit is None else min(first, limit)
            data = f.read(first)
            if len(data) == first and first != limit:  # it grew since fstat: the rest, up to the limit
                data += f.read() if limit is None else f.read(limit - first)
        except OSError as exc:
            raise FileProblem(f"unreadable_{what}", f"{path}: {exc.strerror or exc}") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise FileProblem("file_too_large", f"{path} grew over the limit of {max_bytes} bytes while read")
    return data


_LOG: list[list[tuple[str, str]]] = []  # the active recording_reads logs, innermost last


@contextlib.contextmanager
def recording_reads() -> Iterator[list[tuple[str, str]]]:
    """Collect ``(path, digest)`` of every file :func:`read_recorded` reads inside the block.

    Yields:
        the list being filled, in read order (``path`` as given, as a string; digest as in
        the module docstring).
    """
    log: list[tuple[str, str]] = []
    _LOG.append(log)
    try:
        yield log
    finally:
        _LOG.remove(log)


def _marker(reason: str) -> str:
    """The digest of a file that cannot be read: ``!missing``, ``!unreadable`` or ``!<reason>``
    (the same whatever ``what`` the reader named it with)."""
    for kind in ("missing", "unreadable"):
        if reason.startswith(kind + "_"):
            return "!" + kind
    return "!" + reason


def _note(path: Path | str, digest: str) -> None:
    if _LOG:
        _LOG[-1].append((str(path), digest))


def read_recorded(path: Path | str, *, max_bytes: int | None = None, what: str = "file") -> tuple[bytes, str]:
    """:func:`read_regular` plus the hex sha256 of the bytes, noted in the active log.

    Returns:
        (the bytes, their hex sha256).

    Raises:
        FileProblem: as :func:`read_regular` (noted in the log as ``!<reason>`` first).
    """
    try:
        data = read_regular(path, max_bytes=max_bytes, what=what)
    except FileProblem as exc:
        _note(path, _marker(exc.reason))
        raise
    digest = hashlib.sha256(data).hexdigest()
    _note(path, digest)
    return data, digest


def file_digest(path: Path | str, *, max_bytes: int | None = None, what: str = "file") -> str:
    """The digest :func:`read_recorded` would note for ``path`` now, streaming (1 MiB blocks).

    Returns:
        the hex sha256 of the file's bytes, or the marker of its :class:`FileProblem` reason
        (``!missing``, ``!unreadable``, ``!file_too_large``...) when it cannot be read; never raises for a missing or unreadable file.
    """
    h = hashlib.sha256()
    n = 0
    try:
        with open_regular(path, max_bytes=max_bytes, what=what) as f:
            while block := f.read(2**20):
                h.update(block)
                n += len(block)
    except FileProblem as exc:
        return _marker(exc.reason)
    except OSError:  # an error while reading
        return "!unreadable"
    if max_bytes is not None and n > max_bytes:
        return "!file_too_large"
    return h.hexdigest()
