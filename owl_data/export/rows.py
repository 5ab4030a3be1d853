"""Reading a corpus for export: task parts, rows in batches, image sizes and image bytes.

Every shard is opened through :class:`owl_data.corpus.read.CorpusReader`, which checks it
against the manifest's hash as it opens it (a damaged shard is a :class:`DamagedShardError`
naming it, a corpus rebuilt meanwhile a :class:`CorpusChangedError`); the functions take the
corpus folder or the reader the export opened. Task rows are read a record batch at a time
from a checked task shard, and image bytes are fetched
through :class:`ImageIndex`, which knows in which shard and row group each image lives and
keeps only a few row groups in memory. Rows and images come in corpus order (the build writes
both in scene order, so consecutive rows mostly hit the same row group).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from owl_data.corpus import schema as schemas
from owl_data.corpus.read import CorpusReader, as_reader
from owl_data.errors import FieldError

__all__ = ["ExportError", "ExportSettingError", "Part", "task_parts", "iter_batches", "iter_part_rows", "image_info",
           "ImageIndex", "image_filename"]


class ExportError(ValueError):
    """A corpus, export folder or option that cannot be exported or read back."""


class ExportSettingError(ExportError, FieldError):
    """An export setting that is invalid (``field``: ``format``, ``coords``, ``out``)."""


@dataclass(frozen=True)
class Part:
    """The shards of one task and split (``files`` relative to the corpus, read by ``reader``)."""

    task: str
    split: str
    files: tuple[str, ...]
    reader: CorpusReader = field(compare=False, repr=False)

    @property
    def rows(self) -> int:
        return sum(self.reader.rows(f) for f in self.files)


def task_parts(corpus: Path | CorpusReader) -> list[Part]:
    """Every non-empty (task, split) of ``corpus``, tasks in schema order, splits sorted.

    Raises:
        FileNotFoundError: ``corpus`` has no manifest.
        SchemaError: a manifest of another schema version.
        DamagedShardError / CorpusChangedError: a shard on disk the manifest does not list.
    """
    reader = as_reader(corpus)
    parts = []
    for task in schemas.TASK_TABLES:
        by_split: dict[str, list[str]] = {}
        for rel in reader.files(task):
            by_split.setdefault(Path(rel).parent.name, []).append(rel)
        for split, files in sorted(by_split.items()):
            if any(reader.rows(f) for f in files):
                parts.append(Part(task, split, tuple(files), reader))
    return parts


def iter_batches(reader: CorpusReader, files: tuple[str, ...] | list[str], batch_size: int = 512,
                 columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of ``files`` (shards of ``reader``'s corpus) in order, each shard checked
    as it is opened (images streamed, others read whole)."""
    for f in files:
        pf = reader.open(f, in_memory=not reader.rel(f).startswith("images/"))
        yield from pf.iter_batches(batch_size=batch_size, columns=columns)


def iter_part_rows(part: Part, info: dict[str, tuple[str, int, int]]
                   ) -> Iterator[tuple[dict[str, Any], tuple[str, int, int]]]:
    """Every row of ``part`` (a dict of the task's columns) with its image's ``(format, width,
    height)`` from ``info`` (:func:`image_info`), in corpus order.

    Raises:
        ExportError: a row whose image is not stored in ``images/``.
    """
    for batch in iter_batches(part.reader, part.files):
        for row in batch.to_pylist():
            iid = row["image_id"]
            if iid not in info:
                raise ExportError(f"{part.task} row {row['id']}: image {iid} is not stored in images/")
            yield row, info[iid]


def image_info(corpus: Path | CorpusReader) -> dict[str, tuple[str, int, int]]:
    """``image_id -> (format, width, height)`` without parsing any image bytes (each images
    shard is hashed as it is opened).

    Raises:
        ExportError: an ``image_id`` that is not a sha256 hex, or a ``format`` that is not a
            short lowercase word: both become file names in an export, so a crafted or damaged
            corpus is refused before anything is written.
    """
    reader = as_reader(corpus)
    out: dict[str, tuple[str, int, int]] = {}
    for rel in reader.files("images"):
        t = reader.open(rel, in_memory=False).read(columns=["image_id", "format", "width", "height"])
        for iid, fmt, w, h in zip(*(t.column(c).to_pylist() for c in ("image_id", "format", "width", "height"))):
            where = f"{reader.root / rel}"
            if not schemas.is_image_id(iid):
                raise ExportError(f"{where}: image_id {str(iid)[:80]!r} is not a sha256 hex (64 lowercase hex "
                                  "digits); the corpus is damaged or was edited: rebuild it")
            if not isinstance(fmt, str) or _FORMAT.fullmatch(fmt) is None:
                raise ExportError(f"{where}: image {iid} has format {str(fmt)[:40]!r}, not a lowercase image "
                                  "format name; the corpus is damaged or was edited: rebuild it")
            out[iid] = (fmt, w, h)
    return out


_EXT = {"jpeg": "jpg", "png": "png", "webp": "webp"}
_FORMAT = re.compile(r"[a-z0-9]{1,16}")


def image_filename(image_id: str, fmt: str) -> str:
    """File name of a stored image in an export: ``<image_id>.<ext>``."""
    return f"{image_id}.{_EXT.get(fmt, fmt)}"


class ImageIndex:
    """Image bytes by ``image_id``, a bounded number of row groups held in memory.

    Args:
        corpus: the corpus folder or its reader (each images shard is checked once, when it is
            opened, and stays open).
        cache_groups: row groups kept (each at most the writer's batch size, 64 MiB).
    """

    def __init__(self, corpus: Path | CorpusReader, cache_groups: int = 4) -> None:
        reader = as_reader(corpus)
        self._where: dict[str, tuple[int, int]] = {}
        self._files: list[pq.ParquetFile] = [reader.open(rel, in_memory=False) for rel in reader.files("images")]
        for fi, pf in enumerate(self._files):
            for g in range(pf.num_row_groups):
                for iid in pf.read_row_group(g, columns=["image_id"]).column(0).to_pylist():
                    self._where[iid] = (fi, g)
        self._cache: OrderedDict[tuple[int, int], dict[str, bytes]] = OrderedDict()
        self._cache_groups = max(1, cache_groups)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._where

    def get(self, image_id: str) -> bytes:
        """The stored bytes of ``image_id``.

        Raises:
            ExportError: the corpus has no such image.
        """
        key = self._where.get(image_id)
        if key is None:
            raise ExportError(f"image {image_id} is referenced by a row but not stored in images/")
        group = self._cache.get(key)
        if group is None:
            t = self._files[key[0]].read_row_group(key[1], columns=["image_id", "bytes"])
            group = dict(zip(t.column("image_id").to_pylist(), t.column("bytes").to_pylist()))
            self._cache[key] = group
            while len(self._cache) > self._cache_groups:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return group[image_id]
