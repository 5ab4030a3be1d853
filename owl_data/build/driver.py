"""``owl-data build``: sources -> decoded images -> points -> text -> corpus.

The build is deterministic (same inputs, config and seed -> same fingerprint, whatever the
number of workers or the executor), atomic (written under ``.<name>.partial`` beside the
output and renamed into place when complete) and resumable (finished chunks of scenes are
kept in the partial folder; a changed config starts over, and a chunk is reused only when
the content key of its records -- every field of its Scenes, DeferredScenes and Rejects, the
code versions -- matches (:mod:`owl_data.build.content_key`) and every file its scenes read
still has the sha256 the worker noted (:func:`owl_data.build.chunks.chunk_reusable`)).

Where the work runs (:mod:`owl_data.build.executor`): this process runs the source readers
(annotation files, headers) and writes every chunk; each Scene or DeferredScene (a small
record the worker expands by reading and decoding its own files) goes to the executor --
this process, a local pool or Ray tasks -- and comes back, in order, as scene results, the
loader's Rejects and the files read. At most a few items per worker are in flight, across
chunk boundaries, and a chunk is written as soon as its last result is in; a background
thread streams the chunks, in order, into the corpus's Parquet shards
(:class:`~owl_data.build.accounting.Consolidation`), so only the rejects and the manifest
are left when the last scene is done.

``out`` is checked before anything is created (:mod:`owl_data.fs`): the build never
replaces a folder that is not an empty folder or an Owl-VL corpus, nor one inside or holding
a source.

The stage's modules: :mod:`~owl_data.build.scene` (one scene -> rows and rejects),
:mod:`~owl_data.build.rows` (the one row constructor per task table, source-given rows),
:mod:`~owl_data.build.chunks` (the resumable work state), :mod:`~owl_data.build.accounting`
(chunks -> corpus and manifest) and :mod:`~owl_data.build.content_key` (chunk keys).

Accounting (DESIGN.md): per source, items read = items kept + items rejected; an item is
kept when it produced at least one row; every rejected item has exactly one row in
``rejects`` (an item kept by one scene and rejected by another counts as kept and leaves no
row), and the manifest's per-reason counts are those rows'. A row id is written once: a
later row with the same id is dropped, and its item, if none of its rows was written, is
rejected (``duplicate_row``), so the corpus never holds two rows with one id. Rows whose
source text carries a placeholder reject their item (``placeholder_in_text``,
:mod:`owl_data.conventions.placeholders`); instances with an empty category name are
``empty_category``. An exception of :data:`SCENE_ERRORS` escaping one scene rejects that scene's items (``processing_error``)
instead of ending the build.
"""

from __future__ import annotations

import errno
import hashlib
import json
import shlex
import shutil
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from owl_data.build.accounting import Consolidation
from owl_data.build.chunks import batches, chunk_folder, chunk_reusable, save_chunk
from owl_data.build.content_key import code_versions, records_key
from owl_data.build.executor import (SCENE_ERRORS, Executor, WorkResult, guarded_process_scene, in_flight_limit,
                                     make_executor)
from owl_data.build.rows import row_id
from owl_data.build.scene import process_scene, split_for_group
from owl_data.build.config import BuildConfig
from owl_data.corpus import schema as schemas
from owl_data.errors import FieldError
from owl_data.fs import check_out, output_lock, read_state, write_atomic
from owl_data.records import Record, Reject
from owl_data.sources import SourceOptions, get_reader

__all__ = ["SourceSpec", "BuildReport", "run_build", "process_scene", "guarded_process_scene",
           "split_for_group", "row_id", "SCENE_ERRORS", "DiskFullError", "partial_folder"]

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class SourceSpec:
    """A source to build from: ``NAME=SPEC`` (config field ``sources``); ``synthetic`` marks drawn data."""

    name: str
    spec: str
    synthetic: bool = False

    @classmethod
    def parse(cls, text: str) -> "SourceSpec":
        """Parse ``NAME=SPEC``.

        Raises:
            FieldError: (field ``sources``) no ``=`` or an empty name/spec.
        """
        name, sep, spec = text.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise FieldError("sources", f"sources {text!r}: expected NAME=PATH, e.g. cityscapes=/data/cityscapes")
        return cls(name.strip(), spec.strip())


@dataclass
class BuildReport:
    """What a build wrote: the manifest (the JSON document of ``manifest.json``) and the output folder.

    ``timings``: ``executor`` (its name), ``workers``, ``startup_s`` (starting the pool or the
    Ray cluster, apart from the work), ``chunks_s`` (processing every chunk, the streamed
    consolidation overlapping it) and ``consolidate_tail_s`` (the consolidation left after the
    last chunk: its queue, the rejects, the manifest, the commit), in seconds.
    """

    out: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)


# --- one scene, guarded: owl_data.build.executor (re-exported here) ----------------------

# --- the driver ---------------------------------------------------------------------------


def _records(sources: list[SourceSpec], cfg: BuildConfig) -> Iterator[Record]:
    for s in sources:
        reader = get_reader(s.name)
        yield from reader(s.spec, SourceOptions(name=s.name, synthetic=s.synthetic,
                                                max_image_pixels=cfg.max_image_pixels,
                                                max_file_bytes=cfg.max_file_bytes))


def _check_sources(sources: list[SourceSpec]) -> None:
    """Raises FieldError (``sources``) for no source or a name given twice, SourceError for an
    unknown name (before anything is read)."""
    if not sources:
        raise FieldError("sources", "no source given")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise FieldError("sources", f"a source name appears twice: {names}")
    for s in sources:
        get_reader(s.name)  # fail fast on unknown names


class DiskFullError(OSError):
    """A build that ran out of disk space; its message names the partial folder it leaves."""

    def __init__(self, partial: Path) -> None:
        super().__init__(errno.ENOSPC, "no space left on device")
        self.partial = partial

    def __str__(self) -> str:
        if not self.partial.exists():
            return f"no space left on device (before {self.partial} was made): free space and rerun"
        return (f"no space left on device: the unfinished build is left in {self.partial}; free space and "
                f"rerun the same command to resume from it, or remove it: rm -rf {shlex.quote(str(self.partial))}")


def _consolidate(cons: Consolidation, n_chunks: int, out: Path, sources: list[SourceSpec],
                 cfg: BuildConfig) -> dict[str, Any]:
    """The last step: :meth:`Consolidation.finish` (the manifest it commits)."""
    return cons.finish(n_chunks, out, sources, cfg)


def partial_folder(out: Path) -> Path:
    """``.<name>.partial`` beside ``out``: where a build of ``out`` works and resumes."""
    return out.parent / f".{out.name}.partial"


def _open_partial(out: Path, sources: list[SourceSpec], cfg: BuildConfig) -> tuple[Path, str]:
    """The partial folder beside ``out`` and the build's spec hash.

    The spec (schema version, sources, content config, code versions) is hashed; a partial
    folder left by a build of another spec is removed, so only the same build resumes.
    ``spec.json`` is written atomically; an empty, truncated or ill-shaped one (a kill or a
    full disk) is discarded with a :class:`~owl_data.fs.DamagedStateWarning` and rewritten
    (every chunk is still checked against its own content key, which includes the spec hash).
    """
    spec = {
        "schema_version": schemas.SCHEMA_VERSION,
        "sources": [{"name": s.name, "spec": s.spec, "synthetic": s.synthetic} for s in sources],
        "config": cfg.content_dict(),
        "code": code_versions(),
    }
    spec_hash = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    partial = partial_folder(out)
    old = read_state(partial / "spec.json", lambda v: isinstance(v, dict) and isinstance(v.get("hash"), str),
                     "build spec")  # a damaged one is discarded with a warning; chunks keep their own keys
    if old is not None and old["hash"] != spec_hash:
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    write_atomic(partial / "spec.json", json.dumps({"hash": spec_hash, **spec}, sort_keys=True))
    (partial / "chunks").mkdir(exist_ok=True)
    return partial, spec_hash


@dataclass
class _Chunk:
    """A chunk whose work items are in flight: its records, and each item's result by position."""

    index: int
    folder: Path
    key: str
    records: list[Record]
    waiting: int = 0
    done: dict[int, WorkResult] = field(default_factory=dict)

    def save(self) -> int:
        """Write the chunk (records in order, each deferred item replaced by what it expanded to);
        the number of scenes it holds."""
        results, rejects, inputs = [], [], []
        for pos, rec in enumerate(self.records):
            if isinstance(rec, Reject):
                rejects.append(rec)
                continue
            got = self.done[pos]
            results += got.results
            rejects += got.rejects
            inputs += got.inputs
        save_chunk(self.folder, results, rejects, self.key, inputs)
        return len(results)


def _take(ex: Executor, flight: deque, progress: Progress | None, cons: Consolidation) -> None:
    """Wait for the oldest item in flight; write its chunk when that was the chunk's last and
    hand it to the consolidation."""
    chunk, pos, handle = flight.popleft()
    chunk.done[pos] = ex.result(handle)
    chunk.waiting -= 1
    if chunk.waiting == 0:
        n = chunk.save()
        cons.ready(chunk.index)
        if progress:
            progress("scenes", n)


def _build_chunks(sources: list[SourceSpec], cfg: BuildConfig, partial: Path, spec_hash: str,
                  progress: Progress | None, ex: Executor, cons: Consolidation) -> int:
    """Process every scene into chunks (reusing those whose content key and input files
    match) on ``ex``, keeping at most :func:`in_flight_limit` items in flight across chunk
    boundaries; results are taken back in order and each chunk written when complete and
    handed to ``cons`` (as is each reused chunk). The number of chunks."""
    flight: deque = deque()
    limit = in_flight_limit(ex.workers)
    n_chunks = 0
    for i, records in enumerate(batches(_records(sources, cfg), cfg.chunk_scenes, cfg.chunk_pixels)):
        n_chunks = i + 1
        chunk = _Chunk(i, chunk_folder(partial, i), records_key(records, context=spec_hash), records)
        if chunk_reusable(chunk.folder, chunk.key, cfg.max_file_bytes):
            cons.ready(i)
            if progress:
                progress("resumed", sum(not isinstance(r, Reject) for r in records))
            continue
        shutil.rmtree(chunk.folder, ignore_errors=True)  # stale: built from other records, files or code
        work = [(pos, r) for pos, r in enumerate(records) if not isinstance(r, Reject)]
        chunk.waiting = len(work)
        if not work:
            chunk.save()
            cons.ready(i)
        for pos, rec in work:
            while flight and (len(flight) >= limit or ex.ready(flight[0][2])):  # finished chunks written at once
                _take(ex, flight, progress, cons)
            flight.append((chunk, pos, ex.submit(rec)))
        while flight and ex.ready(flight[0][2]):
            _take(ex, flight, progress, cons)
    while flight:
        _take(ex, flight, progress, cons)
    return n_chunks


def _run_chunks(sources: list[SourceSpec], cfg: BuildConfig, partial: Path, spec_hash: str,
                progress: Progress | None, cons: Consolidation) -> tuple[int, dict[str, Any]]:
    """:func:`_build_chunks` on the executor ``cfg`` names, started once and closed after;
    (the number of chunks, the timings of :class:`BuildReport`)."""
    ex = make_executor(cfg)
    try:
        t0 = time.perf_counter()
        n_chunks = _build_chunks(sources, cfg, partial, spec_hash, progress, ex, cons)
        timings = {"executor": cfg.executor, "workers": ex.workers, "startup_s": round(ex.startup_s, 3),
                   "chunks_s": round(time.perf_counter() - t0, 3)}
    finally:
        ex.close()
    return n_chunks, timings


def run_build(
    sources: list[SourceSpec],
    out: Path,
    cfg: BuildConfig,
    *,
    progress: Progress | None = None,
) -> BuildReport:
    """Build a corpus from ``sources`` into ``out``.

    Args:
        sources: the sources to read, in order.
        out: the corpus folder; replaced atomically when the build completes.
        cfg: build settings.
        progress: optional callback ``(stage, n)`` called as scenes complete.

    Raises:
        FieldError (``sources``) / SourceError: no source, a name given twice, a source spec
            that cannot be read at all.
        OutputError: an ``out`` the build must not replace (:func:`owl_data.fs.check_out`);
            :class:`~owl_data.fs.OutputBusyError` when another process is writing it (its lock,
            :func:`owl_data.fs.output_lock`, names the holder), before anything is touched.
        SchemaError: rows that do not match the schemas (a bug, never bad input).
        DiskFullError: the disk filled while writing (the partial folder is kept for a resume).
    """
    _check_sources(sources)
    out = check_out(out, [s.spec for s in sources])  # before anything is created
    try:
        with output_lock(out):  # one build of `out` at a time: its partial folder and the commit
            partial, spec_hash = _open_partial(out, sources, cfg)
            cons = Consolidation(partial)  # streams each finished chunk into the corpus
            try:
                n_chunks, timings = _run_chunks(sources, cfg, partial, spec_hash, progress, cons)
                manifest = _consolidate(cons, n_chunks, out, sources, cfg)
                timings["consolidate_tail_s"] = round(cons.tail_s, 3)
            finally:
                cons.abort()  # a failed or killed build: stop the writer thread, close its files
    except OSError as exc:
        if exc.errno == errno.ENOSPC or "No space left on device" in str(exc):  # pyarrow's carry no errno
            raise DiskFullError(partial_folder(out)) from exc
        raise
    return BuildReport(out=out, manifest=manifest, timings=timings)
