"""Reading a corpus's shards, each checked against the hash its manifest records.

Every reader of a corpus (validate, stats, show, mix, export, the trainer) opens its Parquet
shards through :meth:`CorpusReader.open` (or :meth:`CorpusReader.read_table`). The reader holds
the manifest it read first; a shard is checked when it is opened, never by a full re-read of
the corpus up front:

- in memory (the default): the file's bytes are read once, their size and sha256 compared with
  the manifest's ``shards`` entry, and the Parquet parsed from those same bytes;
- streamed (``in_memory=False``, for image shards read a row group at a time): the open file is
  hashed, then parsed through the same file handle, so a shard replaced by a rename (how builds
  commit) is still the file that was hashed. A file whose (device, inode, size, mtime) was
  already checked by this reader (or the copy a DataLoader worker got of it) is not hashed again.

On a missing, unlisted, resized or re-hashed shard the manifest is read again: another
fingerprint means the corpus was rebuilt while being read (:class:`CorpusChangedError`,
"changed while reading"); the same one means the shard is damaged (:class:`DamagedShardError`,
naming it). A shard on disk that the manifest does not list is an error too.

A corpus written before the manifest had ``shards`` is read as before: its files are found on
disk and opened unchecked (``legacy_check=True`` recomputes the whole fingerprint up front, as
exports and mixes did; ``hashed`` tells which case holds).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO, Iterable, NoReturn

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from owl_data.corpus import schema as schemas
from owl_data.corpus.manifest import MANIFEST, CorpusChangedError, check_fingerprint, fingerprint_of, read_manifest
from owl_data.corpus.schema import SchemaError

__all__ = ["CorpusReader", "DamagedShardError", "CorpusChangedError", "as_reader", "open_shard"]


class DamagedShardError(ValueError):
    """A shard that is missing, not listed in the manifest, or whose bytes differ from the hash
    the manifest records (``shard``: its relative POSIX path; ``why``: what differs)."""

    def __init__(self, corpus: Path | str, shard: str | None = None, why: str | None = None) -> None:
        self.corpus, self.shard, self.why = corpus, shard, why
        if shard is None:  # the message alone: unpickled, or re-raised from a DataLoader worker
            super().__init__(str(corpus))
        else:
            super().__init__(f"corpus {corpus}: shard {shard} is damaged ({why}); rebuild the corpus")


def _entries(manifest: dict[str, Any], corpus: Path) -> dict[str, dict[str, Any]] | None:
    """The manifest's ``shards`` (None when it has none); SchemaError when malformed."""
    shards = manifest.get("shards")
    if shards is None:
        return None
    ok = isinstance(shards, dict) and all(
        isinstance(e, dict) and isinstance(e.get("sha256"), str) and isinstance(e.get("bytes"), int)
        for e in shards.values())
    if not ok:
        raise SchemaError(f"{corpus}/{MANIFEST}: 'shards' is malformed (path -> sha256, bytes, rows); rebuild the corpus")
    return shards


class CorpusReader:
    """A corpus opened for reading: its manifest read once, each shard checked as it is opened.

    Args:
        corpus: the corpus folder.
        manifest: its manifest when already read (else read here).
        legacy_check: for a manifest without ``shards``, recompute the fingerprint now
            (:func:`owl_data.corpus.manifest.check_fingerprint`).

    Raises:
        FileNotFoundError: not a corpus (no manifest).
        SchemaError: a manifest of another schema version, or with malformed ``shards``.
        DamagedShardError: ``shards`` that do not add up to the manifest's fingerprint.
        CorpusChangedError: ``legacy_check`` and the content differs from the fingerprint.
    """

    def __init__(self, corpus: Path | str, manifest: dict[str, Any] | None = None, *, legacy_check: bool = False):
        self.root = Path(corpus)
        self.manifest = read_manifest(self.root) if manifest is None else manifest
        if manifest is not None:
            schemas.check_version(manifest.get("schema_version"), str(self.root))
        self.fingerprint = self.manifest.get("fingerprint")
        self.shards = _entries(self.manifest, self.root)
        self._checked: dict[str, tuple[int, int, int, int]] = {}  # rel -> (dev, inode, size, mtime_ns)
        if self.shards is not None:
            if fingerprint_of({rel: e["sha256"] for rel, e in self.shards.items()}) != self.fingerprint:
                raise DamagedShardError(self.root, MANIFEST, "its shard hashes do not add up to its fingerprint")
        elif legacy_check:
            check_fingerprint(self.root, self.manifest)

    @property
    def hashed(self) -> bool:
        """Whether the manifest records shard hashes (else the shards are opened unchecked)."""
        return self.shards is not None

    def rel(self, path: Path | str) -> str:
        """The relative POSIX path of a shard given relative to the corpus or as a path under it."""
        p = Path(path)
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return p.as_posix()

    def on_disk(self, folder: str = "") -> list[str]:
        """Every ``*.parquet`` under ``folder`` (relative; "" for the whole corpus) on disk, sorted."""
        base = self.root / folder if folder else self.root
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*.parquet"))

    def unlisted(self, folder: str = "") -> list[str]:
        """The shards on disk under ``folder`` that the manifest does not list ([] without ``shards``)."""
        if self.shards is None:
            return []
        return [rel for rel in self.on_disk(folder) if rel not in self.shards]

    def files(self, folder: str) -> list[str]:
        """The shards under ``folder`` (e.g. ``images``, ``point_vqa/train``), relative, sorted:
        the manifest's when it lists them, else those on disk.

        Raises:
            DamagedShardError / CorpusChangedError: a shard on disk the manifest does not list.
        """
        if self.shards is None:
            return self.on_disk(folder)
        stray = self.unlisted(folder)
        if stray:
            self._fail(stray[0], "not listed in the manifest")
        prefix = folder.rstrip("/") + "/"
        return sorted(rel for rel in self.shards if rel.startswith(prefix))

    def rows(self, path: Path | str) -> int:
        """A shard's row count: the manifest's when recorded, else its Parquet metadata."""
        rel = self.rel(path)
        entry = (self.shards or {}).get(rel)
        if entry is not None and isinstance(entry.get("rows"), int):
            return entry["rows"]
        return self.open(rel, in_memory=False).metadata.num_rows

    def open(self, path: Path | str, *, in_memory: bool = True) -> pq.ParquetFile:
        """The shard at ``path`` (relative to the corpus, or under it), checked against the
        manifest (module docstring) and parsed from the bytes that were checked.

        Raises:
            DamagedShardError: a path outside the corpus; missing, not a regular file, not
                listed, of another size or sha256 than the manifest's, or not readable Parquet
                (named, with why).
            CorpusChangedError: the manifest changed meanwhile (the corpus was rebuilt).
        """
        rel = self.rel(path)
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise DamagedShardError(self.root, rel, "not a path inside the corpus")
        entry = None
        if self.shards is not None:
            entry = self.shards.get(rel)
            if entry is None:
                self._fail(rel, "not listed in the manifest")
        f = self._open_file(rel)
        try:
            source: Any = self._check_stream(rel, f, entry) if not in_memory else self._check_bytes(rel, f, entry)
            return pq.ParquetFile(source)
        except (pa.ArrowInvalid, OSError) as exc:
            f.close()
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self._fail(rel, f"not readable Parquet: {first[:120]}")
        except BaseException:
            f.close()
            raise

    def read_table(self, path: Path | str, columns: list[str] | None = None) -> pa.Table:
        """The checked shard at ``path`` read whole (``columns``: all when None); errors of :meth:`open`."""
        return self.open(path).read(columns=columns)

    def read_images(self, ids: Iterable[str], columns: list[str] | None = None) -> pa.Table:
        """The ``images`` rows whose ``image_id`` is in ``ids`` (``columns``, default ``image_id,
        bytes``), in shard then row order: each images shard checked (streamed) as it is
        opened, only its row groups that hold one of ``ids`` read. Errors of :meth:`open`."""
        want = pa.array(sorted(set(ids)), pa.string())
        cols = list(columns or ["image_id", "bytes"])
        parts = []
        for rel in self.files("images") if len(want) else []:
            pf = self.open(rel, in_memory=False)
            for g in range(pf.num_row_groups):
                sel = pc.is_in(pf.read_row_group(g, columns=["image_id"]).column(0), value_set=want)
                if pc.any(sel).as_py():
                    parts.append(pf.read_row_group(g, columns=cols).filter(sel))
        if not parts:
            return schemas.with_metadata("images").empty_table().select(cols)
        return pa.concat_tables(parts)

    def _open_file(self, rel: str) -> BinaryIO:
        """The shard's file opened for reading: a regular file (a FIFO is never waited on)."""
        path = self.root / rel
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            self._fail(rel, "missing")
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            self._fail(rel, "not a regular file")
        return os.fdopen(fd, "rb")

    def _check_bytes(self, rel: str, f: BinaryIO, entry: dict[str, Any] | None) -> pa.BufferReader:
        with f:
            data = f.read()
        if entry is not None:
            self._compare(rel, len(data), lambda: hashlib.sha256(data).hexdigest(), entry)
        return pa.BufferReader(data)

    def _check_stream(self, rel: str, f: BinaryIO, entry: dict[str, Any] | None) -> BinaryIO:
        if entry is not None:
            st = os.fstat(f.fileno())
            ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if self._checked.get(rel) != ident:
                self._compare(rel, st.st_size, lambda: hashlib.file_digest(f, "sha256").hexdigest(), entry)
                self._checked[rel] = ident
            f.seek(0)
        return f

    def _compare(self, rel: str, size: int, sha, entry: dict[str, Any]) -> None:
        if size != entry["bytes"]:
            self._fail(rel, f"{size} bytes, the manifest says {entry['bytes']}")
        if sha() != entry["sha256"]:
            self._fail(rel, "sha256 mismatch")

    def _fail(self, rel: str, why: str) -> NoReturn:
        """Raise CorpusChangedError when the manifest on disk changed since it was read, else
        DamagedShardError naming ``rel``."""
        try:
            now = read_manifest(self.root).get("fingerprint")
        except (OSError, ValueError):
            now = None
        if now != self.fingerprint:
            raise CorpusChangedError(f"corpus {self.root} changed while reading (rebuilt by another command); rerun")
        raise DamagedShardError(self.root, rel, why)


def as_reader(corpus: Path | str | CorpusReader, **kw: Any) -> CorpusReader:
    """``corpus`` itself when it is a :class:`CorpusReader`, else a new one (``kw``: its options)."""
    return corpus if isinstance(corpus, CorpusReader) else CorpusReader(corpus, **kw)


def open_shard(corpus: Path | str | CorpusReader, path: Path | str, *, in_memory: bool = True) -> pq.ParquetFile:
    """One checked shard of ``corpus`` (:meth:`CorpusReader.open`); errors of that method."""
    return as_reader(corpus).open(path, in_memory=in_memory)
