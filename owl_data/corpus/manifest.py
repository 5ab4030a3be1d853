"""The corpus manifest: ``manifest.json`` (one writer for builds and imports), the content
fingerprint, the dataset card, and reading a manifest back.

``manifest.json`` holds the schema version, the version of owl-data, what made the corpus
(``build_config`` and code versions of a build, ``imported_from`` of an import), per source
its counts (``items_read`` = ``items_kept`` + ``items_rejected``, rejects per reason, rows
per task; a build also writes ``frames``: ``{"upright": n, "raw": n, "ambiguous": n}``, the
images whose annotations were taken in the upright or the raw frame, and how many of those
the annotation left ambiguous, EXIF orientation 2..8 with no stated size or one equal to
both frames', so the ``?frame=`` option decided; a manifest without it is still read),
rows per table and split, rejects per reason, ``shards`` (the relative POSIX path
of every shard -> ``{"sha256": hex, "bytes": n, "rows": n}``, which readers check as they open
a shard: :mod:`owl_data.corpus.read`) and the ``fingerprint``: sha256 over the sorted
``relative/path sha256`` lines of every shard (so it follows from ``shards``). It is written
with sorted keys, after every shard, by :func:`finish_corpus`. A manifest written before
``shards`` existed is still read; its readers fall back to the fingerprint alone.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

import pyarrow.parquet as pq
from owl_data.corpus import schema as schemas
from owl_data.corpus.schema import SchemaError
from owl_data.fs import MANIFEST, swap_into_place

__all__ = [
    "MANIFEST",
    "shard_paths",
    "fingerprint",
    "fingerprint_of",
    "shard_entries",
    "CorpusChangedError",
    "check_fingerprint",
    "read_manifest",
    "source_entry",
    "corpus_manifest",
    "write_dataset_card",
    "finish_corpus",
    "commit_corpus",
]


def shard_paths(corpus: Path) -> list[Path]:
    """Every Parquet shard of a corpus, sorted by relative path."""
    corpus = Path(corpus)
    return sorted(corpus.rglob("*.parquet"), key=lambda p: p.relative_to(corpus).as_posix())


def fingerprint_of(hashes: Mapping[str, str]) -> str:
    """sha256 over the ``relative/path sha256`` lines of ``hashes`` (relative POSIX path -> sha256
    hex of the shard's bytes), sorted by path: the corpus fingerprint."""
    h = hashlib.sha256()
    for rel in sorted(hashes):
        h.update(f"{rel} {hashes[rel]}\n".encode())
    return h.hexdigest()


def fingerprint(corpus: Path) -> str:
    """sha256 over the sorted ``relative/path sha256`` lines of every shard (:func:`fingerprint_of`)."""
    corpus = Path(corpus)
    return fingerprint_of({p.relative_to(corpus).as_posix(): _sha256(p) for p in shard_paths(corpus)})


def _sha256(path: Path) -> str:
    """Hex sha256 of a file, streamed (``hashlib.file_digest``): an images shard can be 512 MiB,
    and reading it whole would make a build's peak memory grow with its corpus."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def shard_entries(corpus: Path) -> dict[str, dict[str, Any]]:
    """The manifest's ``shards``: every shard's relative POSIX path -> ``{"sha256": hex of its
    bytes, "bytes": file size, "rows": Parquet rows}``; each file is hashed streaming and its
    row count read from its footer, so memory does not grow with the shards' size."""
    corpus = Path(corpus)
    out = {}
    for p in shard_paths(corpus):
        rows = pq.ParquetFile(p).metadata.num_rows
        out[p.relative_to(corpus).as_posix()] = {"sha256": _sha256(p), "bytes": p.stat().st_size, "rows": rows}
    return out


class CorpusChangedError(ValueError):
    """The corpus's content no longer matches the fingerprint its manifest (or a mix) recorded,
    or it was rebuilt while it was being read (:mod:`owl_data.corpus.read`)."""


def check_fingerprint(corpus: Path, manifest: Mapping[str, Any] | None = None) -> str:
    """Recompute the fingerprint of ``corpus``; it must equal its manifest's. Returns it.

    Raises:
        FileNotFoundError / SchemaError: not a corpus (:func:`read_manifest`).
        CorpusChangedError: the content changed since the corpus was built.
    """
    m = read_manifest(corpus) if manifest is None else manifest
    fp = fingerprint(corpus)
    if fp != m.get("fingerprint"):
        raise CorpusChangedError(f"{corpus}: content fingerprint {fp[:12]}… differs from the manifest's "
                                 f"{str(m.get('fingerprint'))[:12]}…; the corpus changed since it was built: rebuild it")
    return fp


def read_manifest(corpus: Path) -> dict[str, Any]:
    """Load ``manifest.json``.

    Raises:
        FileNotFoundError: not a corpus (no manifest).
        SchemaError: a manifest that is not a JSON object, or of another schema major.minor
            version (:func:`owl_data.corpus.schema.check_version`: "rebuild with this version").
    """
    path = Path(corpus) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{corpus} is not an Owl-VL corpus: {MANIFEST} is missing")
    m = json.loads(path.read_text())
    if not isinstance(m, dict):
        raise SchemaError(f"{path}: not an Owl-VL manifest (a JSON {type(m).__name__}, not an object)")
    schemas.check_version(m.get("schema_version"), str(corpus))
    return m


def source_entry(spec: str, synthetic: bool, items_read: int, items_kept: int, items_rejected: int,
                 reasons: Mapping[str, int], rows: Mapping[str, int]) -> dict[str, Any]:
    """One source of the manifest's ``sources``: its spec, whether it is synthetic, items
    read/kept/rejected, ``rejects`` per reason (sorted) and ``rows`` per task (non-zero only)."""
    return {"spec": spec, "synthetic": synthetic, "items_read": items_read, "items_kept": items_kept,
            "items_rejected": items_rejected, "rejects": dict(sorted(reasons.items())),
            "rows": {t: n for t, n in rows.items() if n}}


def corpus_manifest(provenance: Mapping[str, Any], sources: Mapping[str, dict[str, Any]],
                    rows: Mapping[str, Mapping[str, int]], reasons: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """The manifest of a written corpus, before :func:`finish_corpus` adds its fingerprint.

    Args:
        provenance: what made the corpus, placed after the versions (a build: ``build_config``,
            ``prompt_pools``, ``code``; an import: ``build_config`` None, ``imported_from``).
        sources: source name -> :func:`source_entry`.
        rows: table -> split -> rows written (``images`` and ``image_refs`` under ``all``).
        reasons: source -> reject reason -> reject rows written.
    """
    return {
        "schema_version": schemas.SCHEMA_VERSION,
        "owl_data_version": __import__("owl_data").__version__,
        **provenance,
        "sources": dict(sources),
        "rows": {t: dict(sorted(c.items())) for t, c in sorted(rows.items())},
        "rejects": {"total": sum(sum(c.values()) for c in reasons.values()),
                    "by_reason": dict(sorted(sum((Counter(c) for c in reasons.values()), Counter()).items()))},
    }


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
    """Complete a written corpus folder: ``shards`` (:func:`shard_entries`) and the fingerprint
    (from the same hashes) into ``manifest``, then ``manifest.json`` and the card.

    Returns:
        the manifest with its ``shards`` and ``fingerprint`` set.
    """
    folder = Path(folder)
    shards = shard_entries(folder)
    manifest = {**manifest, "shards": shards,
                "fingerprint": fingerprint_of({rel: e["sha256"] for rel, e in shards.items()})}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    write_dataset_card(folder, manifest)
    return manifest


def commit_corpus(staging: Path, out: Path) -> None:
    """Move a finished ``staging`` folder to ``out`` atomically (an old ``out`` is replaced);
    the caller holds the lock of ``out`` (:func:`owl_data.fs.output_lock`).

    Readers see the old corpus or the new one, never a mix and never no ``out``: on Linux the
    two folders are exchanged in one step (``renameat2`` with ``RENAME_EXCHANGE``), then the
    old one (now at ``staging``) is removed; elsewhere two renames, a half-done one repaired by
    the next writer (:func:`owl_data.fs.swap_into_place`, :func:`owl_data.fs.repair_swap`).
    """
    swap_into_place(staging, out)
