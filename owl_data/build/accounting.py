"""Consolidation: the finished chunks -> the corpus, with the build's accounting.

The rules (DESIGN.md; :mod:`owl_data.build.driver`): per source, items read = items kept +
items rejected; an item is kept when at least one of its rows was written; a row id is
written once (a later row with a written id is dropped, and its item, when none of its rows
was written, is rejected ``duplicate_row``); every item no scene kept has exactly one row in
``rejects`` (an item kept by one scene and rejected by another counts as kept and leaves no
row), and the manifest's per-reason counts are those rows'.

:class:`Consolidation` runs the steps, each filling the one :class:`Accounting` record:
while the build runs, chunk by chunk in index order, the images and references and the task
rows per split (``_Streamed.feed``); at the end, the items read and kept (:func:`_read_items`), the items whose every
row was a duplicate (:func:`_drop_duplicates`), the rejects (:func:`_write_rejects`), then
the manifest (:func:`_manifest`).
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
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

__all__ = ["Accounting", "Consolidation", "consolidate"]


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


class _Streamed:
    """The writers of the streamed tables (images, references, task rows per split) and what
    they have seen; fed one chunk at a time, in chunk order (:meth:`feed`)."""

    def __init__(self, staging: Path, acct: Accounting) -> None:
        self.staging, self.acct = staging, acct
        self.image_split: dict[str, str] = {}
        self.seen_refs: set[tuple[str, str, str]] = set()
        self.w_img = corpus_mod.ShardWriter(staging / "images", "images").__enter__()
        self.w_ref = corpus_mod.ShardWriter(staging / "image_refs", "image_refs").__enter__()
        self.tasks: dict[str, dict[str, corpus_mod.ShardWriter]] = {t: {} for t in schemas.TASK_TABLES}
        self.ids: dict[str, set[str]] = {t: set() for t in schemas.TASK_TABLES}

    def feed(self, d: Path) -> None:
        """Write chunk ``d``'s images and references (each once), then its task rows (each id
        once), each row in the split of its image (the first image row written with its id).

        Raises:
            RuntimeError: a task row whose image is in no chunk fed so far (a bug: a scene's
                rows and its image row are written in one chunk).
        """
        for row in read_rows(d, "images"):
            if row["image_id"] not in self.image_split:
                self.image_split[row["image_id"]] = row["split"]
                self.w_img.write([row])
        for row in read_rows(d, "image_refs"):
            k = (row["image_id"], row["source"], row["source_path"])
            if k not in self.seen_refs:
                self.seen_refs.add(k)
                self.w_ref.write([row])
        acct = self.acct
        for task in schemas.TASK_TABLES:
            writers, ids = self.tasks[task], self.ids[task]
            rows_d = read_rows(d, task)
            for row, it in zip(rows_d, row_items(d, task, len(rows_d))):
                if row["id"] in ids:
                    if it is not None:
                        acct.duplicates[row["source"]].setdefault(it, f"{task} row {row['id']} already written")
                    continue
                ids.add(row["id"])
                if it is not None:
                    acct.written[row["source"]].add(it)
                split = self.image_split.get(row["image_id"])
                if split is None:
                    raise RuntimeError(f"{d.name}: {task} row {row['id']} refers to image {row['image_id']} "
                                       "of no chunk consolidated so far")
                row["split"] = split
                if split not in writers:
                    writers[split] = corpus_mod.ShardWriter(self.staging / task / split, task).__enter__()
                writers[split].write([row])
                acct.rows_by_source[task][row["source"]] += 1

    def close(self, exc: BaseException | None = None) -> None:
        """Close every writer: flush and record the rows written, or (``exc``) write nothing more."""
        writers = [self.w_img, self.w_ref] + [w for t in schemas.TASK_TABLES for _, w in sorted(self.tasks[t].items())]
        for w in writers:
            w.__exit__(None if exc is None else type(exc), exc, None)
        if exc is None:
            self.acct.rows["images"]["all"] = self.w_img.rows
            self.acct.rows["image_refs"]["all"] = self.w_ref.rows
            for task in schemas.TASK_TABLES:
                for split, w in sorted(self.tasks[task].items()):
                    self.acct.rows[task][split] = w.rows


class Consolidation:
    """Chunks -> the corpus in ``partial/corpus``, streamed while the build still runs.

    The driver calls :meth:`ready` for each chunk as it is written or found reusable, in any
    order; chunks are consolidated strictly in index order (a chunk waits for the ones before
    it), on a background thread when ``background`` (Arrow's Parquet encoding releases the
    GIL, so the writer overlaps the scene work instead of following it). :meth:`finish`
    writes what needs every chunk -- the items read and kept, the rejects, the manifest --
    and commits; :meth:`abort` stops and closes everything (a failed or killed build: the
    staging folder is discarded by the next run). Each writer receives exactly the rows, in
    the order, that a consolidation after the last chunk would give it, so the corpus's bytes
    do not depend on when chunks finish.
    """

    def __init__(self, partial: Path, *, background: bool = True) -> None:
        self.partial = partial
        self.staging = partial / "corpus"
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir()
        self.acct = Accounting()
        self._streamed = _Streamed(self.staging, self.acct)
        self._ready: set[int] = set()
        self._next = 0
        self._error: BaseException | None = None
        self._closed = False
        self.tail_s = 0.0  # seconds finish() took: the consolidation that could not overlap
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name="owl-data-consolidate", daemon=True)
            self._thread.start()

    def _feed(self, index: int) -> None:
        if self._error is None:
            try:
                self._streamed.feed(chunk_folder(self.partial, index))
            except BaseException as exc:  # kept for the driver: raised by ready() / finish()
                self._error = exc

    def _run(self) -> None:
        while (index := self._queue.get()) is not None:
            self._feed(index)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def ready(self, index: int) -> None:
        """Chunk ``index`` is complete on disk; consolidate it once every chunk before it is.

        Raises:
            the exception consolidating an earlier chunk raised (e.g. a full disk).
        """
        self._raise()
        self._ready.add(index)
        while self._next in self._ready:
            self._ready.discard(self._next)
            if self._thread is not None:
                self._queue.put(self._next)
            else:
                self._feed(self._next)
            self._next += 1
        self._raise()

    def _stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def finish(self, n_chunks: int, out: Path, sources: list["SourceSpec"], cfg: BuildConfig) -> dict[str, Any]:
        """Write the rest of the corpus from the ``n_chunks`` chunks, commit it to ``out`` and
        remove ``partial``; returns the manifest (the JSON document of ``manifest.json``).

        Raises:
            RuntimeError: a chunk below ``n_chunks`` was never made ready (a bug).
            the exception consolidating a chunk raised.
        """
        t0 = time.perf_counter()
        if self._next != n_chunks or self._ready:
            raise RuntimeError(f"consolidation: {self._next} of {n_chunks} chunks ready in order")
        self._stop()
        self._raise()
        self._closed = True
        self._streamed.close()
        acct = self.acct
        chunks = [chunk_folder(self.partial, i) for i in range(n_chunks)]
        _read_items(chunks, acct)
        _write_rejects(self.staging, chunks, _drop_duplicates(acct), acct)
        manifest = corpus_mod.finish_corpus(self.staging, _manifest(acct, sources, cfg))
        corpus_mod.commit_corpus(self.staging, out)
        shutil.rmtree(self.partial, ignore_errors=True)
        self.tail_s = time.perf_counter() - t0
        return manifest

    def abort(self) -> None:
        """Stop the background writer and close its files without writing more (no-op after
        :meth:`finish`)."""
        if self._closed:
            return
        self._error = self._error or RuntimeError("consolidation aborted")
        self._stop()
        self._closed = True
        self._streamed.close(self._error)


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
    remove ``partial``; returns the manifest (the JSON document of ``manifest.json``). The
    same as a :class:`Consolidation` fed every chunk, in this thread."""
    c = Consolidation(partial, background=False)
    try:
        for i in range(n_chunks):
            c.ready(i)
        return c.finish(n_chunks, out, sources, cfg)
    finally:
        c.abort()
