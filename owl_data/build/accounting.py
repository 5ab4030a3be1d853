"""Consolidation: the finished chunks -> the corpus, with the build's accounting.

The rules (DESIGN.md; :mod:`owl_data.build.driver`): per source, items read = items kept +
items rejected; an item is kept when at least one of its rows was written; a row id is
written once (a later row with a written id is dropped, and its item, when none of its rows
was written, is rejected ``duplicate_row``); every item no scene kept has exactly one row in
``rejects`` (an item kept by one scene and rejected by another counts as kept and leaves no
row), and the manifest's per-reason counts are those rows'.

:func:`consolidate` runs the steps in order, each filling the one :class:`Accounting` record:
images and references (:func:`_write_images`), the task rows per split
(:func:`_write_task`), the items read and kept (:func:`_read_items`), the items whose every
row was a duplicate (:func:`_drop_duplicates`), the rejects (:func:`_write_rejects`), then
the manifest (:func:`_manifest`).
"""

from __future__ import annotations

import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from owl_data.build.chunks import FRAME_COUNTS, chunk_folder, read_accounting, read_rows, reject_row, row_items
from owl_data.build.content_key import code_versions
from owl_data.build.config import BuildConfig
from owl_data.corpus import schema as schemas
from owl_data.corpus import writer as corpus_mod
from owl_data.records import Reject

if TYPE_CHECKING:
    from owl_data.build.driver import SourceSpec

__all__ = ["Accounting", "consolidate"]


def _sets() -> defaultdict[str, set[str]]:
    return defaultdict(set)


def _counters() -> defaultdict[str, Counter]:
    return defaultdict(Counter)


@dataclass
class Accounting:
    """What consolidation counted, per source (keys of the per-source mappings are source names).

    Attributes:
        rows: table -> split (``all`` for images and references) -> rows written.
        rows_by_source: task table -> source -> rows written.
        read, kept, rejected: source -> item keys read / kept / with a row in ``rejects``.
        reasons: source -> reject reason -> reject rows.
        written: source -> items with at least one task row written.
        duplicates: source -> item -> why one of its rows was dropped as a duplicate.
        frames: source -> ``upright``/``raw``/``ambiguous`` -> source paths of its images
            (:data:`~owl_data.build.chunks.FRAME_COUNTS`).
    """

    rows: defaultdict[str, Counter] = field(default_factory=_counters)
    rows_by_source: defaultdict[str, Counter] = field(default_factory=_counters)
    read: defaultdict[str, set[str]] = field(default_factory=_sets)
    kept: defaultdict[str, set[str]] = field(default_factory=_sets)
    rejected: defaultdict[str, set[str]] = field(default_factory=_sets)
    reasons: defaultdict[str, Counter] = field(default_factory=_counters)
    written: defaultdict[str, set[str]] = field(default_factory=_sets)
    duplicates: defaultdict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    frames: defaultdict[str, defaultdict[str, set[str]]] = field(default_factory=lambda: defaultdict(_sets))


def _write_images(staging: Path, chunks: list[Path], acct: Accounting) -> dict[str, str]:
    """Write each image and each (image, source, path) reference once; image id -> its split."""
    image_split: dict[str, str] = {}
    seen_refs: set[tuple[str, str, str]] = set()
    with corpus_mod.ShardWriter(staging / "images", "images") as w_img, \
            corpus_mod.ShardWriter(staging / "image_refs", "image_refs") as w_ref:
        for d in chunks:
            for row in read_rows(d, "images"):
                if row["image_id"] not in image_split:
                    image_split[row["image_id"]] = row["split"]
                    w_img.write([row])
            for row in read_rows(d, "image_refs"):
                k = (row["image_id"], row["source"], row["source_path"])
                if k not in seen_refs:
                    seen_refs.add(k)
                    w_ref.write([row])
    acct.rows["images"]["all"] = w_img.rows
    acct.rows["image_refs"]["all"] = w_ref.rows
    return image_split


def _write_task(staging: Path, chunks: list[Path], task: str, image_split: dict[str, str],
                acct: Accounting) -> None:
    """Write ``task``'s rows under ``<task>/<split>/``, each id once, in the split of its image
    (the first image row written with that id); note written and duplicated items.

    Rows are streamed chunk by chunk: one :class:`~owl_data.corpus.writer.ShardWriter` per
    split, opened at its first row and kept open, closed at the end in sorted split order, so
    memory holds one chunk's rows (plus each writer's pending batch), not the whole task.
    """
    writers: dict[str, corpus_mod.ShardWriter] = {}
    ids: set[str] = set()
    try:
        for d in chunks:
            rows_d = read_rows(d, task)
            for row, it in zip(rows_d, row_items(d, task, len(rows_d))):
                if row["id"] in ids:
                    if it is not None:
                        acct.duplicates[row["source"]].setdefault(it, f"{task} row {row['id']} already written")
                    continue
                ids.add(row["id"])
                if it is not None:
                    acct.written[row["source"]].add(it)
                split = row["split"] = image_split[row["image_id"]]
                if split not in writers:
                    writers[split] = corpus_mod.ShardWriter(staging / task / split, task).__enter__()
                writers[split].write([row])
                acct.rows_by_source[task][row["source"]] += 1
    except BaseException as exc:
        for w in writers.values():  # close the files, write nothing more
            w.__exit__(type(exc), exc, exc.__traceback__)
        raise
    for split, w in sorted(writers.items()):
        w.__exit__(None, None, None)
        acct.rows[task][split] = w.rows


def _read_items(chunks: list[Path], acct: Accounting) -> None:
    """The items read and kept, per source, over every chunk."""
    for d in chunks:
        for name, a in read_accounting(d).items():
            acct.read[name] |= set(a["read"])
            acct.kept[name] |= set(a["kept"])
            for k in FRAME_COUNTS:
                acct.frames[name][k] |= set(a["frames"][k])


def _drop_duplicates(acct: Accounting) -> dict[str, dict[str, str]]:
    """Unkeep the kept items none of whose rows was written (all duplicates); source -> item -> why."""
    dropped: dict[str, dict[str, str]] = defaultdict(dict)
    for src, per in acct.duplicates.items():
        for it, detail in per.items():
            if it not in acct.written[src] and it in acct.kept[src]:
                acct.kept[src].discard(it)
                dropped[src][it] = detail
    return dropped


def _write_rejects(staging: Path, chunks: list[Path], dropped: dict[str, dict[str, str]], acct: Accounting) -> None:
    """One reject row per item no scene kept (its first reject), then the ``duplicate_row`` ones."""
    with corpus_mod.ShardWriter(staging / "rejects", "rejects") as w_rej:
        for d in chunks:
            for row in read_rows(d, "rejects"):
                src, item = row["source"], row["item"]
                if item in acct.rejected[src] or item in acct.kept[src]:
                    continue
                acct.rejected[src].add(item)
                acct.reasons[src][row["reason"]] += 1
                w_rej.write([row])
        for src, per in sorted(dropped.items()):
            for item, detail in sorted(per.items()):
                if item in acct.rejected[src]:
                    continue
                acct.rejected[src].add(item)
                acct.reasons[src]["duplicate_row"] += 1
                w_rej.write([reject_row(Reject(src, item, "consolidate", "duplicate_row", detail))])


def _source_stats(acct: Accounting, sources: list["SourceSpec"]) -> dict[str, Any]:
    """The manifest's ``sources``: per source, its spec and its counts (``frames``: images per
    annotation frame taken, and how many of them the annotation left ambiguous)."""
    stats: dict[str, Any] = {}
    for s in sources:
        stats[s.name] = {
            "spec": s.spec, "synthetic": s.synthetic,
            "items_read": len(acct.read.get(s.name, set())), "items_kept": len(acct.kept.get(s.name, set())),
            "items_rejected": len(acct.rejected.get(s.name, set())),
            "rejects": dict(sorted(acct.reasons[s.name].items())),
            "rows": {t: acct.rows_by_source[t][s.name] for t in schemas.TASK_TABLES if acct.rows_by_source[t][s.name]},
            "frames": {k: len(acct.frames[s.name][k]) for k in FRAME_COUNTS},
        }
    return stats


def _manifest(acct: Accounting, sources: list["SourceSpec"], cfg: BuildConfig) -> dict[str, Any]:
    """The manifest before :func:`owl_data.corpus.writer.finish_corpus` adds files and fingerprint."""
    code = code_versions()
    sources_stats = _source_stats(acct, sources)
    return {
        "schema_version": schemas.SCHEMA_VERSION,
        "owl_data_version": code["owl_data"],
        "build_config": cfg.content_dict(),
        "prompt_pools": code["prompt_pools"],
        "code": code,
        "sources": sources_stats,
        "rows": {t: dict(sorted(c.items())) for t, c in sorted(acct.rows.items())},
        "rejects": {"total": sum(sum(c.values()) for c in acct.reasons.values()),
                    "by_reason": dict(sorted(sum(acct.reasons.values(), Counter()).items()))},
    }


def consolidate(partial: Path, n_chunks: int, out: Path, sources: list["SourceSpec"],
                cfg: BuildConfig) -> dict[str, Any]:
    """Write the corpus from the ``n_chunks`` chunks of ``partial``, commit it to ``out`` and
    remove ``partial``; returns the manifest (the JSON document of ``manifest.json``)."""
    staging = partial / "corpus"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    chunks = [chunk_folder(partial, i) for i in range(n_chunks)]
    acct = Accounting()
    image_split = _write_images(staging, chunks, acct)
    for task in schemas.TASK_TABLES:
        _write_task(staging, chunks, task, image_split, acct)
    _read_items(chunks, acct)
    _write_rejects(staging, chunks, _drop_duplicates(acct), acct)
    manifest = corpus_mod.finish_corpus(staging, _manifest(acct, sources, cfg))
    corpus_mod.commit_corpus(staging, out)
    shutil.rmtree(partial, ignore_errors=True)
    return manifest
