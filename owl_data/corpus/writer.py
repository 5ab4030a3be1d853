"""Corpus storage: Parquet shards, manifest, fingerprint, dataset card, reading back.

Layout (DESIGN.md)::

    CORPUS/manifest.json
    CORPUS/images/part-*.parquet
    CORPUS/image_refs/part-*.parquet
    CORPUS/<task>/<split>/part-*.parquet      task in point_vqa, vqa, caption, grounding
    CORPUS/rejects/part-*.parquet
    CORPUS/README.md                          dataset card with YAML ``configs:``

Writers validate every batch against :mod:`schemas` (types and non-null fields), store the
schema version in each file's metadata, bound record batches by bytes (so large images
never overflow a batch) and return row/byte counts; a writer that wrote nothing says so.
The fingerprint is sha256 over the sorted ``path sha256`` lines of every shard.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from owl_data.corpus import schema as schemas
from owl_data.corpus.schema import SchemaError

__all__ = [
    "ShardWriter",
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

MANIFEST = "manifest.json"


def _row_bytes(row: dict[str, Any]) -> int:
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


@dataclass
class ShardWriter:
    """Writes one table's rows as ``part-NNNNN.parquet`` shards under ``folder``.

    Use as a context manager; ``rows``/``bytes``/``files`` report what was written.

    Attributes:
        folder: destination folder (created).
        table: table name in :data:`schemas.TABLES`.
        max_batch_bytes: a record batch (row group) is flushed past this many bytes.
        max_shard_bytes: a new shard file starts past this many bytes.
    """

    folder: Path
    table: str
    max_batch_bytes: int = 64 << 20
    max_shard_bytes: int = 512 << 20
    rows: int = 0
    bytes: int = 0
    files: list[Path] = field(default_factory=list)
    _pending: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _pending_bytes: int = 0
    _shard_bytes: int = 0
    _writer: pq.ParquetWriter | None = field(default=None, repr=False)

    def __enter__(self) -> "ShardWriter":
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            b = _row_bytes(row)
            if self._pending and self._pending_bytes + b > self.max_batch_bytes:
                self._flush()
            self._pending.append(row)
            self._pending_bytes += b

    def _flush(self) -> None:
        if not self._pending:
            return
        t = to_table(self.table, self._pending)
        if self._writer is None or self._shard_bytes >= self.max_shard_bytes:
            self._close_file()
            path = self.folder / f"part-{len(self.files):05d}.parquet"
            self._writer = pq.ParquetWriter(path, t.schema, compression="zstd")
            self.files.append(path)
            self._shard_bytes = 0
        self._writer.write_table(t)
        self.rows += t.num_rows
        self._shard_bytes += self._pending_bytes
        self.bytes += self._pending_bytes
        self._pending, self._pending_bytes = [], 0

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._flush()
        self._close_file()


def shard_paths(corpus: Path) -> list[Path]:
    """Every Parquet shard of a corpus, sorted by relative path."""
    corpus = Path(corpus)
    return sorted(corpus.rglob("*.parquet"), key=lambda p: p.relative_to(corpus).as_posix())


def fingerprint(corpus: Path) -> str:
    """sha256 over the sorted ``relative/path sha256`` lines of every shard."""
    corpus = Path(corpus)
    h = hashlib.sha256()
    for p in shard_paths(corpus):
        h.update(f"{p.relative_to(corpus).as_posix()} {hashlib.sha256(p.read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()


def read_manifest(corpus: Path) -> dict[str, Any]:
    """Load ``manifest.json``.

    Raises:
        FileNotFoundError: not a corpus (no manifest).
        SchemaError: a manifest of another schema major version.
    """
    path = Path(corpus) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{corpus} is not an Owl-VL corpus: {MANIFEST} is missing")
    m = json.loads(path.read_text())
    if str(m.get("schema_version", "")).split(".")[0] != schemas.SCHEMA_VERSION.split(".")[0]:
        raise SchemaError(
            f"{corpus}: schema version {m.get('schema_version')!r}, this owl-data reads {schemas.SCHEMA_VERSION}"
        )
    return m


def write_dataset_card(corpus: Path, manifest: dict[str, Any]) -> None:
    """Write ``README.md`` with Hugging Face YAML ``configs:`` (one per non-empty task)."""
    lines = ["---", "configs:"]
    tables = manifest.get("rows", {})
    first = True
    for task in schemas.TASK_TABLES:
        splits = sorted(s for s, n in tables.get(task, {}).items() if n > 0)
        if not splits:
            continue
        lines.append(f"- config_name: {task}")
        if first:
            lines.append("  default: true")
            first = False
        lines.append("  data_files:")
        for s in splits:
            lines += [f"  - split: {s}", f"    path: \"{task}/{s}/*.parquet\""]
    lines += ["---", "", "# Owl-VL corpus", ""]
    present = [t for t in schemas.TASK_TABLES if any(tables.get(t, {}).values())]
    lines.append(
        f"Tasks: {', '.join(present) or 'none'}; built by `owl-data` "
        f"(schema {manifest.get('schema_version')}). Images are not a config: join a task's "
        "`image_id` with `images/*.parquet` (column `bytes`), or export with "
        "`owl-data export --format hf` for embedded images. Points and boxes are normalised to [0, 1] "
        "in the stored upright image's frame (x right, y down); images are in `images/` keyed "
        "by `image_id` (sha256 of the stored bytes)."
    )
    lines += ["", "| table | split | rows |", "|---|---|---|"]
    for task, per in sorted(tables.items()):
        for s, n in sorted(per.items()):
            lines.append(f"| {task} | {s} | {n} |")
    sources = manifest.get("sources", {})
    if sources:
        lines += ["", "| source | synthetic | items read | kept | rejected |", "|---|---|---|---|---|"]
        for name, s in sorted(sources.items()):
            lines.append(
                f"| {name} | {s.get('synthetic', False)} | {s['items_read']} | {s['items_kept']} | {s['items_rejected']} |"
            )
    lines.append(f"\nFingerprint: `{manifest.get('fingerprint')}`\n")
    (Path(corpus) / "README.md").write_text("\n".join(lines))


def finish_corpus(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Complete a written corpus folder: fingerprint into ``manifest``, ``manifest.json``, card.

    Returns:
        the manifest with its ``fingerprint`` set.
    """
    folder = Path(folder)
    manifest = {**manifest, "fingerprint": fingerprint(folder)}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    write_dataset_card(folder, manifest)
    return manifest


def commit_corpus(staging: Path, out: Path) -> None:
    """Move a finished ``staging`` folder to ``out`` atomically (an old ``out`` is replaced).

    Readers see the old corpus or the new one, never a mix: the old folder is renamed aside,
    the new one renamed into place, then the old one removed
    (:func:`owl_data.fs.swap_into_place`).
    """
    from owl_data.fs import swap_into_place

    swap_into_place(staging, out)


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
