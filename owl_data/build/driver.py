"""``owl-data build``: sources -> decoded images -> points -> text -> corpus.

The build is deterministic (same inputs, config and seed -> same fingerprint, whatever the
number of workers), atomic (written under ``.<name>.partial`` beside the output and renamed
into place when complete) and resumable (finished chunks of scenes are kept in the partial
folder; a changed config starts over, and a chunk is reused only when the content key of
its records -- every field of its Scenes and Rejects, the image files' size and mtime, the
code versions -- matches: :mod:`owl_data.build.content_key`).

``--out`` is checked before anything is created (:mod:`owl_data.fs`): the build never
replaces a folder that is not an empty folder or an Owl-VL corpus, nor one inside or holding
a source.

Accounting (DESIGN.md): per source, items read = items kept + items rejected; an item is
kept when it produced at least one row; every rejected item has exactly one row in
``rejects`` (an item kept by one scene and rejected by another counts as kept and leaves no
row), and the manifest's per-reason counts are those rows'. A row id is written once: a
later row with the same id is dropped, and its item, if none of its rows was written, is
rejected (``duplicate_row``), so the corpus never holds two rows with one id. Rows whose
source text carries a placeholder reject their item (``placeholder_in_text``,
:mod:`owl_data.conventions.placeholders`); instances with an empty category name are ``empty_category``. An exception of
:data:`SCENE_ERRORS` escaping one scene rejects that scene's items (``processing_error``)
instead of ending the build.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.ipc as ipc

from owl_data.corpus import schema as schemas
from owl_data.corpus import writer as corpus_mod
from owl_data.config import BuildConfig
from owl_data.build.content_key import code_versions, records_key
from owl_data.fs import check_out
from owl_data.generators.prompts import POOL_VERSION
from owl_data.records import Reject, Scene
from owl_data.build.scene import process_scene, split_for_group
from owl_data.sources import SourceOptions, get_reader
from owl_data.build.rows import row_id

__all__ = ["SourceSpec", "BuildReport", "run_build", "process_scene", "guarded_process_scene",
           "split_for_group", "row_id"]

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class SourceSpec:
    """A source on the command line: ``NAME=SPEC``; ``synthetic`` marks drawn data."""

    name: str
    spec: str
    synthetic: bool = False

    @classmethod
    def parse(cls, text: str) -> "SourceSpec":
        """Parse ``NAME=SPEC``.

        Raises:
            ValueError: no ``=`` or an empty name/spec.
        """
        name, sep, spec = text.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise ValueError(f"--source {text!r}: expected NAME=PATH, e.g. cityscapes=/data/cityscapes")
        return cls(name.strip(), spec.strip())


@dataclass
class BuildReport:
    """What a build wrote: the manifest and the output folder."""

    out: Path
    manifest: dict[str, Any] = field(default_factory=dict)


# --- the driver ---------------------------------------------------------------------------

_CFG: BuildConfig | None = None


def _init_worker(cfg: BuildConfig) -> None:
    global _CFG
    _CFG = cfg


def _work(scene: Scene) -> dict[str, Any]:
    assert _CFG is not None
    return guarded_process_scene(scene, _CFG)


# What processing one scene can raise on input no check foresaw (numpy/Pillow/pycocotools
# on odd data, a scene too big for memory). Bugs of other kinds (KeyError, AttributeError,
# SchemaError raised by the writer) still stop the build.
SCENE_ERRORS = (ValueError, TypeError, OverflowError, RecursionError, OSError, MemoryError)


def guarded_process_scene(scene: Scene, cfg: BuildConfig) -> dict[str, Any]:
    """:func:`process_scene`, with the last line of defence of the driver.

    Every specific fault has its own reject reason; an exception of :data:`SCENE_ERRORS`
    that still escapes turns that scene's items into rejects (stage ``process``, reason
    ``processing_error``, detail the exception's type and message) instead of killing the
    build.
    """
    try:
        return process_scene(scene, cfg)
    except SCENE_ERRORS as exc:
        items = list(dict.fromkeys(scene.items + [tr.item for tr in scene.rows]))
        detail = f"{type(exc).__name__}: {str(exc)[:300]}"
        return {"image": None, "ref": None, "rows": {}, "kept": set(), "items": items,
                "rejects": [Reject(scene.ref.source, it, "process", "processing_error", detail) for it in items]}


def _records(sources: list[SourceSpec], cfg: BuildConfig) -> Iterator[Scene | Reject]:
    for s in sources:
        reader = get_reader(s.name)
        yield from reader(s.spec, SourceOptions(name=s.name, synthetic=s.synthetic,
                                                max_image_pixels=cfg.max_image_pixels))


def _chunks(records: Iterator[Scene | Reject], size: int) -> Iterator[list[Scene | Reject]]:
    buf: list[Scene | Reject] = []
    n_scenes = 0
    for r in records:
        buf.append(r)
        if isinstance(r, Scene):
            n_scenes += 1
            if n_scenes >= size:
                yield buf
                buf, n_scenes = [], 0
    if buf:
        yield buf


def _write_ipc(path: Path, table: str, rows: list[dict[str, Any]]) -> None:
    t = corpus_mod.to_table(table, rows)
    with ipc.new_file(path, t.schema) as w:
        w.write_table(t)


def _read_ipc(path: Path) -> pa.Table:
    with ipc.open_file(path) as r:
        return r.read_all()


def _reject_row(r: Reject) -> dict[str, str]:
    return {"source": r.source, "item": r.item, "stage": r.stage, "reason": r.reason, "detail": r.detail}


def _save_chunk(folder: Path, results: list[dict[str, Any]], source_rejects: list[Reject], key: str) -> None:
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    images = [r["image"] for r in results if r["image"] is not None]
    refs = [r["ref"] for r in results if r["ref"] is not None]
    _write_ipc(tmp / "images.arrow", "images", images)
    _write_ipc(tmp / "image_refs.arrow", "image_refs", refs)
    for task in schemas.TASK_TABLES:
        _write_ipc(tmp / f"{task}.arrow", task, [row for r in results for row in r["rows"].get(task, [])])
    rejects = [rj for r in results for rj in r["rejects"]] + source_rejects
    _write_ipc(tmp / "rejects.arrow", "rejects", [_reject_row(r) for r in rejects])
    acct: dict[str, dict[str, Any]] = {}
    seen: dict[str, set[str]] = defaultdict(set)
    kept: dict[str, set[str]] = defaultdict(set)
    for r, res_src in ((r, r.get("source")) for r in results):
        for it in r["items"]:
            seen[res_src].add(it)
        kept[res_src] |= r["kept"]
    for rj in rejects:
        seen[rj.source].add(rj.item)
    for name in seen:
        acct[name] = {"read": sorted(seen[name]), "kept": sorted(kept[name])}
    row_items = {task: [it for r in results for it in r.get("row_items", {}).get(task, [])]
                 for task in schemas.TASK_TABLES}
    (tmp / "row_items.json").write_text(json.dumps(row_items))
    (tmp / "accounting.json").write_text(json.dumps(acct))
    (tmp / CHUNK_KEY).write_text(key)
    tmp.rename(folder)


CHUNK_KEY = "content_key.txt"


def _chunk_reusable(folder: Path, key: str) -> bool:
    """A finished chunk folder built from the same records by the same code."""
    try:
        return (folder / CHUNK_KEY).read_text() == key
    except OSError:
        return False


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
        ValueError / SourceError: a source spec that cannot be read at all.
        SchemaError: rows that do not match the schemas (a bug, never bad input).
    """
    if not sources:
        raise ValueError("no source given")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"a source name appears twice: {names}")
    for s in sources:
        get_reader(s.name)  # fail fast on unknown names
    out = check_out(out, [s.spec for s in sources])  # before anything is created
    spec = {
        "schema_version": schemas.SCHEMA_VERSION,
        "sources": [{"name": s.name, "spec": s.spec, "synthetic": s.synthetic} for s in sources],
        "config": cfg.content_dict(),
        "code": code_versions(),
    }
    spec_hash = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    partial = out.parent / f".{out.name}.partial"
    if (partial / "spec.json").is_file():
        old = json.loads((partial / "spec.json").read_text())
        if old.get("hash") != spec_hash:
            shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    (partial / "spec.json").write_text(json.dumps({"hash": spec_hash, **spec}, sort_keys=True))
    chunks_dir = partial / "chunks"
    chunks_dir.mkdir(exist_ok=True)

    pool = None
    if cfg.workers > 1:
        pool = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn").Pool(cfg.workers, _init_worker, (cfg,))
    try:
        n_chunks = 0
        for i, chunk in enumerate(_chunks(_records(sources, cfg), cfg.chunk_scenes)):
            n_chunks = i + 1
            folder = chunks_dir / f"{i:06d}"
            scenes = [r for r in chunk if isinstance(r, Scene)]
            key = records_key(chunk, context=spec_hash)
            if _chunk_reusable(folder, key):
                if progress:
                    progress("resumed", len(scenes))
                continue
            shutil.rmtree(folder, ignore_errors=True)  # stale: built from other records or code
            if pool is not None:
                results = pool.map(_work, scenes, chunksize=1)
            else:
                results = [guarded_process_scene(s, cfg) for s in scenes]
            for s, r in zip(scenes, results):
                r["source"] = s.ref.source
            _save_chunk(folder, results, [r for r in chunk if isinstance(r, Reject)], key)
            if progress:
                progress("scenes", len(scenes))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    manifest = _consolidate(partial, n_chunks, out, sources, cfg)
    return BuildReport(out=out, manifest=manifest)


def _row_items(chunk: Path, task: str, n: int) -> list[str | None]:
    """The item key of each of a chunk's ``task`` rows (None when unknown)."""
    try:
        got = json.loads((chunk / "row_items.json").read_text()).get(task, [])
    except (OSError, ValueError):
        got = []
    return got if len(got) == n else [None] * n


def _consolidate(partial: Path, n_chunks: int, out: Path, sources: list[SourceSpec], cfg: BuildConfig) -> dict[str, Any]:
    staging = partial / "corpus"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    chunk_dirs = [partial / "chunks" / f"{i:06d}" for i in range(n_chunks)]
    image_split: dict[str, str] = {}
    rows_count: dict[str, Counter] = defaultdict(Counter)
    rows_by_source: dict[str, Counter] = defaultdict(Counter)

    with corpus_mod.ShardWriter(staging / "images", "images") as w_img, \
            corpus_mod.ShardWriter(staging / "image_refs", "image_refs") as w_ref:
        seen_refs: set[tuple[str, str, str]] = set()
        for d in chunk_dirs:
            for row in _read_ipc(d / "images.arrow").to_pylist():
                if row["image_id"] not in image_split:
                    image_split[row["image_id"]] = row["split"]
                    w_img.write([row])
            for row in _read_ipc(d / "image_refs.arrow").to_pylist():
                k = (row["image_id"], row["source"], row["source_path"])
                if k not in seen_refs:
                    seen_refs.add(k)
                    w_ref.write([row])

    rows_count["images"]["all"] = w_img.rows
    rows_count["image_refs"]["all"] = w_ref.rows
    # a row id is written once: a later row with an id already written (a source listing the
    # same thing twice) is dropped, and its item rejected (duplicate_row) unless another of
    # its rows was written
    written_items: dict[str, set[str]] = defaultdict(set)
    dup_items: dict[str, dict[str, str]] = defaultdict(dict)
    for task in schemas.TASK_TABLES:
        per_split: dict[str, list[dict[str, Any]]] = defaultdict(list)
        ids: set[str] = set()
        for d in chunk_dirs:
            rows_d = _read_ipc(d / f"{task}.arrow").to_pylist()
            items_d = _row_items(d, task, len(rows_d))
            for row, it in zip(rows_d, items_d):
                if row["id"] in ids:
                    if it is not None:
                        dup_items[row["source"]].setdefault(it, f"{task} row {row['id']} already written")
                    continue
                ids.add(row["id"])
                if it is not None:
                    written_items[row["source"]].add(it)
                row["split"] = image_split[row["image_id"]]
                per_split[row["split"]].append(row)
        for split, rows in sorted(per_split.items()):
            with corpus_mod.ShardWriter(staging / task / split, task) as w:
                w.write(rows)
            rows_count[task][split] = w.rows
            for row in rows:
                rows_by_source[task][row["source"]] += 1

    read: dict[str, set[str]] = defaultdict(set)
    kept: dict[str, set[str]] = defaultdict(set)
    for d in chunk_dirs:
        acct = json.loads((d / "accounting.json").read_text())
        for name, a in acct.items():
            read[name] |= set(a["read"])
            kept[name] |= set(a["kept"])

    dropped: dict[str, dict[str, str]] = defaultdict(dict)  # items whose every row was a duplicate
    for src, per in dup_items.items():
        for it, detail in per.items():
            if it not in written_items[src] and it in kept[src]:
                kept[src].discard(it)
                dropped[src][it] = detail

    # one reject row per item that no scene kept (an item kept in one scene and rejected in
    # another counts as kept, and leaves no row); the per-reason counts are those rows'
    reasons: dict[str, Counter] = defaultdict(Counter)
    rejected: dict[str, set[str]] = defaultdict(set)
    with corpus_mod.ShardWriter(staging / "rejects", "rejects") as w_rej:
        for d in chunk_dirs:
            for row in _read_ipc(d / "rejects.arrow").to_pylist():
                src, item = row["source"], row["item"]
                if item in rejected[src] or item in kept[src]:
                    continue
                rejected[src].add(item)
                reasons[src][row["reason"]] += 1
                w_rej.write([row])
        for src, per in sorted(dropped.items()):
            for item, detail in sorted(per.items()):
                if item in rejected[src]:
                    continue
                rejected[src].add(item)
                reasons[src]["duplicate_row"] += 1
                w_rej.write([_reject_row(Reject(src, item, "consolidate", "duplicate_row", detail))])

    source_stats: dict[str, Any] = {}
    for s in sources:
        r = read.get(s.name, set())
        k = kept.get(s.name, set())
        rej = rejected.get(s.name, set())
        source_stats[s.name] = {
            "spec": s.spec, "synthetic": s.synthetic,
            "items_read": len(r), "items_kept": len(k), "items_rejected": len(rej),
            "rejects": dict(sorted(reasons[s.name].items())),
            "rows": {t: rows_by_source[t][s.name] for t in schemas.TASK_TABLES if rows_by_source[t][s.name]},
        }
    manifest = {
        "schema_version": schemas.SCHEMA_VERSION,
        "owl_data_version": __import__("owl_data").__version__,
        "build_config": cfg.content_dict(),
        "prompt_pools": POOL_VERSION,
        "code": code_versions(),
        "sources": source_stats,
        "rows": {t: dict(sorted(c.items())) for t, c in sorted(rows_count.items())},
        "rejects": {"total": sum(sum(c.values()) for c in reasons.values()),
                    "by_reason": dict(sorted(sum(reasons.values(), Counter()).items()))},
    }
    manifest = corpus_mod.finish_corpus(staging, manifest)
    corpus_mod.commit_corpus(staging, out)
    shutil.rmtree(partial, ignore_errors=True)
    return manifest
