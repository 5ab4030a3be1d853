"""Corpus storage: Parquet shards written against the schemas, split names, reading back.

Layout (DESIGN.md)::

    CORPUS/manifest.json
    CORPUS/images/part-*.parquet
    CORPUS/image_refs/part-*.parquet
    CORPUS/<task>/<split>/part-*.parquet      task in point_vqa, vqa, caption, grounding
    CORPUS/rejects/part-*.parquet
    CORPUS/README.md                          dataset card with YAML ``configs:``

:class:`ShardWriter` is the one Parquet part writer (the corpus's tables and the hub-ready
export's): it validates every batch against :mod:`owl_data.corpus.schema` (types and
non-null fields), stores the schema version in each file's metadata, bounds record batches
by bytes (so large images never overflow a batch) and returns row/byte counts. The manifest,
fingerprint and dataset card are :mod:`owl_data.corpus.manifest` (re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from owl_data.corpus import schema as schemas
from owl_data.corpus.manifest import (
    MANIFEST,
    commit_corpus,
    fingerprint,
    finish_corpus,
    read_manifest,
    shard_paths,
    write_dataset_card,
)
from owl_data.corpus.schema import SchemaError

__all__ = [
    "ShardWriter",
    "STORED_COLUMNS",
    "parquet_options",
    "to_table",
    "fingerprint",
    "write_dataset_card",
    "read_manifest",
    "shard_paths",
    "MANIFEST",
    "finish_corpus",
    "commit_corpus",
    "check_split",
    "corpus_splits",
]


def _row_bytes(row: dict[str, Any]) -> int:
    """A corpus row's size estimate in bytes: its strings and bytes, 64 per turn, 64 overhead."""
    n = 64
    for v in row.values():
        if isinstance(v, (bytes, str)):
            n += len(v)
        elif isinstance(v, list):
            n += 64 * len(v) + sum(len(t.get("content", "")) for t in v if isinstance(t, dict))
    return n


def to_table(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows -> an Arrow table of ``table``'s schema (with version metadata).

    Raises:
        SchemaError: a value of the wrong type, or a null in a non-nullable field.
    """
    schema = schemas.with_metadata(table)
    try:
        t = pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, KeyError) as exc:
        raise SchemaError(f"{table}: rows do not match schema {schemas.SCHEMA_VERSION}: {exc}") from None
    for f, col in zip(schema, t.columns):
        if not f.nullable and col.null_count:
            raise SchemaError(f"{table}.{f.name}: {col.null_count} null value(s) in a non-nullable field")
    return t


STORED_COLUMNS: dict[str, tuple[str, ...]] = {"images": ("bytes",)}
"""Per table, the columns written without compression or dictionary: encoded image files (PNG,
JPEG) gain nothing from zstd (measured: 40.48 MB either way for 12 full-size Cityscapes frames)
and cost its time, and a dictionary of distinct files is never used."""


def parquet_options(table: str, schema: pa.Schema) -> dict[str, Any]:
    """The ``pq.ParquetWriter`` options of ``table``'s shards: zstd and dictionaries, except for
    the :data:`STORED_COLUMNS` of the table, written as they are."""
    stored = STORED_COLUMNS.get(table, ())
    if not stored:
        return {"compression": "zstd"}
    others = [f.name for f in schema if f.name not in stored]
    return {"compression": {**{c: "zstd" for c in others}, **{c: "none" for c in stored}},
            "use_dictionary": others}


CONVERT_ROWS = 1024
"""Pending rows a :class:`ShardWriter` converts to Arrow at a time."""


@dataclass
class ShardWriter:
    """Writes one table's rows as ``part-NNNNN.parquet`` shards under ``folder``.

    Use as a context manager; ``rows``/``bytes``/``files`` report what was written (bytes:
    the sum of the rows' ``row_bytes`` estimates).

    Attributes:
        folder: destination folder (created).
        table: table name in :data:`owl_data.corpus.schema.TABLES`.
        max_batch_bytes: the byte bound of a record batch (row group), in ``row_bytes``;
            16 MiB by default, so a build's writers (one per table and split) hold little
            memory at any corpus size while row groups stay large enough to scan.
        max_shard_bytes: a new shard file starts once a file holds this many bytes.
        batch_rule: ``"fit"``: a batch never exceeds ``max_batch_bytes`` (the row that would
            overflow it starts the next); ``"reach"``: a batch ends with the row that brings
            it to ``max_batch_bytes`` or to ``max_batch_rows`` rows.
        max_batch_rows: ``"reach"`` only: rows per batch at most (None: no bound).
        schema: the Arrow schema of the files; None: ``table``'s corpus schema with version
            metadata, every batch checked by :func:`to_table` (:class:`SchemaError`). Another
            schema (the hub-ready export's) is applied by Arrow alone.
        row_bytes: row -> its size estimate in bytes.
    """

    folder: Path
    table: str
    max_batch_bytes: int = 16 << 20
    max_shard_bytes: int = 512 << 20
    batch_rule: Literal["fit", "reach"] = "fit"
    max_batch_rows: int | None = None
    schema: pa.Schema | None = None
    row_bytes: Callable[[dict[str, Any]], int] = _row_bytes
    rows: int = 0
    bytes: int = 0
    files: list[Path] = field(default_factory=list)
    _pending: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _tables: list[pa.Table] = field(default_factory=list, repr=False)
    _pending_rows: int = 0
    _pending_bytes: int = 0
    _shard_bytes: int = 0
    _writer: pq.ParquetWriter | None = field(default=None, repr=False)

    def __enter__(self) -> "ShardWriter":
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        """Buffer ``rows``; a batch that is full (``batch_rule``) is written first.

        The pending batch is held as Arrow tables (rows converted every
        :data:`CONVERT_ROWS`), whose size is close to the ``row_bytes`` estimate, never as
        Python dicts, which take several times that: memory stays bounded by the batch bytes.
        """
        for row in rows:
            b = self.row_bytes(row)
            if self._pending_rows and self._batch_full(b):
                self._flush()
            self._pending.append(row)
            self._pending_rows += 1
            self._pending_bytes += b
            if len(self._pending) >= CONVERT_ROWS:
                self._tables.append(self._to_table())
                self._pending = []

    def _batch_full(self, next_bytes: int) -> bool:
        """Whether the pending batch ends before a row of ``next_bytes`` (``batch_rule``)."""
        if self.batch_rule == "fit":
            return self._pending_bytes + next_bytes > self.max_batch_bytes
        rows_full = self.max_batch_rows is not None and self._pending_rows >= self.max_batch_rows
        return rows_full or self._pending_bytes >= self.max_batch_bytes

    def _to_table(self) -> pa.Table:
        if self.schema is None:
            return to_table(self.table, self._pending)
        return pa.Table.from_pylist(self._pending, schema=self.schema)

    def _batch(self) -> pa.Table:
        """The pending batch as one table of single-chunk columns (what one ``from_pylist`` of
        every pending row gives, so the file's bytes do not depend on the conversion steps)."""
        if self._pending or not self._tables:
            self._tables.append(self._to_table())
        t = self._tables[0] if len(self._tables) == 1 else pa.concat_tables(self._tables).combine_chunks()
        self._tables, self._pending = [], []
        return t

    def _flush(self) -> None:
        """Write the pending batch as one row group, in a new shard when the current one is full."""
        if not self._pending_rows:
            return
        t = self._batch()
        if self._writer is None or self._shard_bytes >= self.max_shard_bytes:
            self._close_file()
            path = self.folder / f"part-{len(self.files):05d}.parquet"
            self._writer = pq.ParquetWriter(path, t.schema, **parquet_options(self.table, t.schema))
            self.files.append(path)
            self._shard_bytes = 0
        self._writer.write_table(t, row_group_size=min(t.num_rows, 1 << 20))  # Arrow's own cap
        self.rows += t.num_rows
        self._shard_bytes += self._pending_bytes
        self.bytes += self._pending_bytes
        self._pending_rows, self._pending_bytes = 0, 0

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._flush()
        self._close_file()


def check_split(split: str) -> str:
    """``split`` when it is a plain split name (letters, digits, ``_ . -``; the corpus's folder
    names, :data:`owl_data.records.SPLIT_NAME`), never a path such as ``../images``.

    Raises:
        ValueError: naming the split and what a split name is.
    """
    from owl_data.records import SPLIT_NAME

    if not isinstance(split, str) or not SPLIT_NAME.fullmatch(split):
        raise ValueError(f"split {str(split)[:40]!r} is not a split name (letters, digits, _ . -; e.g. train, val)")
    return split


def corpus_splits(corpus: str | Path, tasks: Iterable[str] = tuple(schemas.TASK_TABLES)) -> list[str]:
    """The sorted split names that hold shards of any of ``tasks`` in ``corpus``."""
    out = set()
    for task in tasks:
        d = Path(corpus) / task
        if d.is_dir():
            out.update(s.name for s in d.iterdir() if s.is_dir() and any(s.glob("*.parquet")))
    return sorted(out)
