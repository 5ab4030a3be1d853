"""Resumable build chunks: the build's private work state in ``.<out>.partial/chunks/NNNNNN/``.

A chunk holds what a run of at most ``chunk_scenes`` scenes (fewer once their images reach
``chunk_pixels`` pixels: chunks sized by work) produced, so a killed build resumes
where it stopped: one Arrow IPC file per table (``images``, ``image_refs``, the task tables,
``rejects``), ``row_items.json`` (the item key of each task row), ``accounting.json`` (per
source: the items read and kept, and the images per annotation frame taken), ``inputs.json``
(``[path, sha256]`` of every file its scenes read, recorded by the worker as it read them) and
``content_key.txt``
(:mod:`owl_data.build.content_key`). A chunk is reused when its key matches and every input
file hashes (streaming sha256, :func:`~owl_data.ingest.files.file_digest`) as it did.
A folder is written under ``NNNNNN.tmp`` and renamed, so a chunk is whole or absent; one whose
key matches but whose files do not read back (a disk fault) is discarded with a warning and redone.

Why chunks are not corpus shards (:class:`owl_data.corpus.writer.ShardWriter`), though rows
go through the same schema check (:func:`owl_data.corpus.writer.to_table`): a shard is the
published format (Parquet with zstd, record batches and files bounded by bytes, one folder
per task and split, fingerprinted), written once per build in row order after duplicates
are dropped and splits settled. A chunk is scratch state read back whole by the same build
and deleted with the partial folder: one uncompressed IPC file per table (fast to write and
to read, no sizing), holding rows before consolidation (duplicates and per-split folders
are decided only when every chunk is read), beside the item accounting no shard carries.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.ipc as ipc

from owl_data.corpus import schema as schemas
from owl_data.corpus.writer import to_table
from owl_data.fs import DamagedStateWarning, read_state
from owl_data.ingest.files import file_digest
from owl_data.records import DeferredScene, Record, Reject, Scene

if TYPE_CHECKING:
    from owl_data.build.scene import SceneResult

__all__ = ["CHUNK_KEY", "INPUTS", "FRAME_COUNTS",
           "inputs_unchanged", "batches", "scene_pixels", "chunk_folder", "save_chunk", "chunk_reusable", "read_rows", "row_items",
           "read_accounting", "reject_row"]

CHUNK_KEY = "content_key.txt"
"""The file of a chunk holding its content key."""
INPUTS = "inputs.json"
"""The file of a chunk listing ``[path, digest]`` of the files its scenes read."""


def scene_pixels(r: Scene | DeferredScene) -> int:
    """Width * height of a scene's image as its record states it (a Scene's declared size, a
    DeferredScene's header ``pixels``); 0 when unknown."""
    if isinstance(r, DeferredScene):
        return max(int(r.pixels), 0)
    size = r.ref.declared_size
    return int(size[0]) * int(size[1]) if size else 0


def batches(records: Iterator[Record], size: int, max_pixels: int | None = None) -> Iterator[list[Record]]:
    """The records in runs of ``size`` scenes, a run ending early once its scenes' pixels
    (:func:`scene_pixels`) reach ``max_pixels`` (a DeferredScene counts as one scene; a
    source's Rejects ride with the scenes around them; every run holds at least one scene)."""
    buf: list[Record] = []
    n_scenes = pixels = 0
    for r in records:
        buf.append(r)
        if isinstance(r, (Scene, DeferredScene)):
            n_scenes += 1
            pixels += scene_pixels(r)
            if n_scenes >= size or (max_pixels is not None and pixels >= max_pixels):
                yield buf
                buf, n_scenes, pixels = [], 0, 0
    if buf:
        yield buf


def chunk_folder(partial: Path, index: int) -> Path:
    """The folder of chunk ``index`` in the partial folder."""
    return partial / "chunks" / f"{index:06d}"


def reject_row(r: Reject) -> dict[str, str]:
    """A ``rejects`` table row."""
    return {"source": r.source, "item": r.item, "stage": r.stage, "reason": r.reason, "detail": r.detail}


def _write_ipc(path: Path, table: str, rows: list[dict[str, Any]]) -> None:
    t = to_table(table, rows)
    with ipc.new_file(path, t.schema) as w:
        w.write_table(t)


FRAME_COUNTS: tuple[str, ...] = ("upright", "raw", "ambiguous")
"""The keys of a source's ``frames`` (chunk accounting and manifest): images whose annotations
were taken in the upright frame, in the raw frame, and (of either) those whose frame the
annotation did not settle (:attr:`owl_data.ingest.geometry.AnnotationFrame.ambiguous`)."""


def _item_sets(results: list["SceneResult"], rejects: list[Reject]) -> dict[str, dict[str, Any]]:
    """Per source: ``read`` (every item of its scenes and rejects) and ``kept``, sorted, and
    ``frames``: :data:`FRAME_COUNTS` -> the sorted source paths of its images in each."""
    seen: dict[str, set[str]] = defaultdict(set)
    kept: dict[str, set[str]] = defaultdict(set)
    frames: dict[str, dict[str, set[str]]] = defaultdict(lambda: {k: set() for k in FRAME_COUNTS})
    for r in results:
        seen[r.source].update(r.items)
        kept[r.source] |= r.kept
        if r.frame is not None:
            frames[r.source][r.frame].add(r.source_path)
            if r.frame_ambiguous:
                frames[r.source]["ambiguous"].add(r.source_path)
    for rj in rejects:
        seen[rj.source].add(rj.item)
    return {name: {"read": sorted(seen[name]), "kept": sorted(kept[name]),
                   "frames": {k: sorted(v) for k, v in frames[name].items()}} for name in seen}


def save_chunk(folder: Path, results: list["SceneResult"], source_rejects: list[Reject], key: str,
               inputs: Iterable[tuple[str, str]] = ()) -> None:
    """Write one chunk: the scenes' results and the sources' own Rejects, under content ``key``,
    with the ``(path, digest)`` of each file its scenes read (``inputs``, duplicates dropped).

    Raises:
        SchemaError: rows that do not match the schemas (a bug, never bad input).
    """
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _write_ipc(tmp / "images.arrow", "images", [r.image for r in results if r.image is not None])
    _write_ipc(tmp / "image_refs.arrow", "image_refs", [r.ref for r in results if r.ref is not None])
    for task in schemas.TASK_TABLES:
        _write_ipc(tmp / f"{task}.arrow", task, [row for r in results for row in r.rows.get(task, [])])
    rejects = [rj for r in results for rj in r.rejects] + source_rejects
    _write_ipc(tmp / "rejects.arrow", "rejects", [reject_row(r) for r in rejects])
    items = {task: [it for r in results for it in r.row_items.get(task, [])] for task in schemas.TASK_TABLES}
    (tmp / "row_items.json").write_text(json.dumps(items))
    (tmp / "accounting.json").write_text(json.dumps(_item_sets(results, rejects)))
    (tmp / INPUTS).write_text(json.dumps(sorted({tuple(x) for x in inputs})))
    (tmp / CHUNK_KEY).write_text(key)
    tmp.rename(folder)


def _is_row_items(v: object) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, list) for k, x in v.items())


def _is_accounting(v: object) -> bool:
    return isinstance(v, dict) and all(
        isinstance(a, dict) and isinstance(a.get("read"), list) and isinstance(a.get("kept"), list)
        and isinstance(a.get("frames"), dict) and all(isinstance(a["frames"].get(k), list) for k in FRAME_COUNTS)
        for a in v.values())


def _table_ok(path: Path, table: str) -> bool:
    """An IPC file that opens (its footer reads) with the table's schema."""
    try:
        with ipc.open_file(path) as r:
            return r.schema.remove_metadata().equals(schemas.TABLES[table].remove_metadata())
    except (OSError, pa.ArrowException):
        return False


def _is_inputs(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(x, list) and len(x) == 2 and all(isinstance(s, str) for s in x)
                                       for x in v)


def inputs_unchanged(folder: Path, max_bytes: int | None) -> bool:
    """Whether every file in the chunk's ``inputs.json`` has the digest it had when read
    (:func:`~owl_data.ingest.files.file_digest`, files over ``max_bytes`` not read); a
    damaged list is discarded with a warning (False)."""
    listed = read_state(folder / INPUTS, _is_inputs, "build chunk")
    if listed is None:
        return False
    return all(file_digest(path, max_bytes=max_bytes) == digest for path, digest in listed)


def chunk_reusable(folder: Path, key: str, max_bytes: int | None = None) -> bool:
    """A finished chunk folder built from the same records by the same code and from the same
    file contents (:func:`inputs_unchanged`), whose files read back; a chunk of the right key
    with a damaged file is discarded with one :class:`~owl_data.fs.DamagedStateWarning`
    naming the file (its scenes are processed again)."""
    try:
        if (folder / CHUNK_KEY).read_text() != key:
            return False
    except (OSError, UnicodeDecodeError):
        return False
    for table in ("images", "image_refs", *schemas.TASK_TABLES, "rejects"):
        if not _table_ok(folder / f"{table}.arrow", table):
            warnings.warn(f"{folder / f'{table}.arrow'}: damaged build chunk (truncated or unreadable) discarded; "
                          "its scenes are processed again", DamagedStateWarning, stacklevel=2)
            return False
    return (read_state(folder / "row_items.json", _is_row_items, "build chunk") is not None
            and read_state(folder / "accounting.json", _is_accounting, "build chunk") is not None
            and inputs_unchanged(folder, max_bytes))


def read_rows(folder: Path, table: str) -> list[dict[str, Any]]:
    """Every row of a chunk's ``table``, in order."""
    with ipc.open_file(folder / f"{table}.arrow") as r:
        return r.read_all().to_pylist()


def row_items(folder: Path, task: str, n: int) -> list[str | None]:
    """The item key of each of a chunk's ``n`` ``task`` rows (None when unknown)."""
    try:
        got = json.loads((folder / "row_items.json").read_text()).get(task, [])
    except (OSError, ValueError):
        got = []
    return got if len(got) == n else [None] * n


def read_accounting(folder: Path) -> dict[str, dict[str, Any]]:
    """A chunk's per-source item sets: source -> ``{"read": [...], "kept": [...], "frames":
    {"upright": [...], "raw": [...], "ambiguous": [...]}}`` (source paths of images)."""
    return json.loads((folder / "accounting.json").read_text())
