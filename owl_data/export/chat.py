"""Chat-JSON exports (LLaVA, ShareGPT): the text layer, the export driver, reading back.

A corpus row becomes one JSON record: its turns with the placeholders ``<point>`` and
``<box>`` rendered as text in a coordinate convention (:mod:`owl_data.conventions.coords`), the
image path, and an ``owl`` object with everything the text does not carry (task, source,
split, image_id and the task's other fields exactly; the row's own point or box rendered in
the convention), so that reading the export back returns the same rows.

Round trip guarantee: before a row is written its rendered turns are parsed back; a row whose
text would not come back unchanged (its own words already look like coordinates of the
convention, e.g. "(3,4)" in ``qwen``) is skipped and listed under ``skipped`` in
``owl_export.json``, never written ambiguously. Geometry is parsed only in the tasks that
have it (point_vqa, grounding).

Layout of an export folder::

    OUT/<task>_<split>.json     one JSON list per task and split
    OUT/images/<image_id>.<ext> each image once, the stored bytes
    OUT/owl_export.json         format, convention, corpus fingerprint and sources, files, skipped

:mod:`owl_data.export.importer` writes an export read back here as a corpus.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from PIL import Image, UnidentifiedImageError

from owl_data.corpus import schema as schemas
from owl_data.corpus.schema import SchemaError
from owl_data.corpus import writer as corpus_mod
from owl_data.conventions.coords import BOX_END, BOX_START, REF_END, REF_START, CoordError, Convention, \
    get_convention, render_box, render_point, render_text, restore_text
from owl_data.export.rows import ExportError, ExportSettingError, image_filename, image_info, iter_batches, iter_part_rows, \
    task_parts
from owl_data.fs import OutputError, OutputKind, check_out, json_marker, staged
from owl_data.conventions.placeholders import placeholder_problem
from owl_data.records import SPLIT_NAME

__all__ = ["SIDECAR", "EXPORT_OUT", "load_export_json", "Layout", "ExportReport", "ReadBack", "export_chat",
           "read_chat_export", "prepare_out",
           "render_row", "restore_row"]

SIDECAR = "owl_export.json"
_COMMON = ("id", "image_id", "source", "split", "conversations")
_QWEN_TOKENS = (BOX_START, BOX_END, REF_START, REF_END)
# the field each task's placeholder stands for: <point> -> point, <box> -> bbox
_GEOMETRY = {"point_vqa": "point", "grounding": "bbox"}


@dataclass(frozen=True)
class Layout:
    """How one chat format lays out a record.

    Attributes:
        name: format name (``llava`` | ``sharegpt``).
        to_record: ``(id, image_path, turns [{role, content}], owl) -> record``.
        from_record: ``record -> (id, image_paths, turns [{role, content}])``; raises
            ValueError on a record it cannot read.
        finish: called with (folder, files) after the JSON files are written (extra files).
    """

    name: str
    to_record: Callable[[str, str, list[dict[str, str]], dict[str, Any]], dict[str, Any]]
    from_record: Callable[[dict[str, Any]], tuple[str, list[str], list[dict[str, str]]]]
    finish: Callable[[Path, dict[str, dict[str, Any]]], None] | None = None


@dataclass
class ExportReport:
    """What an export wrote."""

    out: Path
    format: str
    coords: str | None
    rows: dict[str, dict[str, int]] = field(default_factory=dict)  # task -> split -> rows
    images: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> row ids


@dataclass
class ReadBack:
    """An export read back as corpus rows.

    Attributes:
        rows: task -> corpus rows (schema of the task), in export order.
        images: image_id -> the image file.
        rejects: records that could not be read (``rejects`` table rows).
        items: source -> records read.
        sidecar: the export's ``owl_export.json``.
    """

    rows: dict[str, list[dict[str, Any]]]
    images: dict[str, Path]
    rejects: list[dict[str, str]]
    items: Counter
    sidecar: dict[str, Any]


# --- folders ------------------------------------------------------------------------------

_EXPORT_NAMES = re.compile(r"(owl_export\.json|README\.md|dataset_info\.json|images|"
                           r"(%s)(_[A-Za-z0-9_.-]+\.json)?)" % "|".join(schemas.TASK_TABLES))
EXPORT_OUT = OutputKind(what="an Owl-VL export", marker=SIDECAR,
                        recognise=json_marker(lambda d: d.get("format") in ("hf", "llava", "sharegpt")),
                        owned=lambda name: _EXPORT_NAMES.fullmatch(name) is not None, example="export")


def prepare_out(out: Path, kind: OutputKind, source: Path | None = None) -> Path:
    """Check ``out`` (:func:`owl_data.fs.check_out`) before anything is written.

    ``out`` may be missing, empty, or an earlier result of the same command holding nothing
    else; anything else is refused rather than replaced, and so is an ``out`` inside
    ``source`` (the folder read) or holding it.

    Raises:
        ExportSettingError: of field ``out``: the reasons of :func:`~owl_data.fs.check_out`.
    """
    try:
        return check_out(out, kind=kind, reads={"the folder read": source} if source is not None else None)
    except OutputError as exc:
        raise ExportSettingError(exc.field, str(exc)) from None


def _corpus_summary(corpus: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        "path": str(corpus),
        "fingerprint": manifest.get("fingerprint"),
        "schema_version": manifest.get("schema_version"),
        "sources": {n: {"synthetic": bool(s.get("synthetic", False))} for n, s in manifest.get("sources", {}).items()},
    }


def write_sidecar(folder: Path, fmt: str, corpus: Path, manifest: dict[str, Any], files: dict[str, Any],
                  coords: Convention | None, images: int, skipped: dict[str, list[str]]) -> None:
    meta = {
        "format": fmt,
        "owl_data_version": __import__("owl_data").__version__,
        "schema_version": schemas.SCHEMA_VERSION,
        "coords": coords.describe() if coords is not None else
        {"name": None, "text": "geometry kept as data: point {x, y} and bbox xyxy normalised to [0, 1]"},
        "corpus": _corpus_summary(corpus, manifest),
        "files": files,
        "images": images,
        "skipped": {k: sorted(v) for k, v in sorted(skipped.items())},
    }
    (folder / SIDECAR).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")


# --- the text layer ----------------------------------------------------------------------

def _geometry(task: str, row: dict[str, Any]) -> tuple[tuple[float, float] | None, list[float] | None]:
    if task == "point_vqa":
        return (row["point"]["x"], row["point"]["y"]), row["target"]["bbox"]
    if task == "grounding":
        return None, row["bbox"]
    return None, None


def render_row(task: str, row: dict[str, Any], conv: Convention, size: tuple[int, int]
               ) -> tuple[list[dict[str, str]], dict[str, Any]] | None:
    """A corpus row -> (turns with geometry as text, ``owl`` metadata); None if ambiguous."""
    point, box = _geometry(task, row)
    phrase = row.get("expression") if task == "grounding" else None
    turns = []
    for t in row["conversations"]:
        content = render_text(t["content"], conv, size, point=point, box=box,
                              phrase=phrase if t["role"] == "assistant" else None)
        if task in _GEOMETRY:
            if conv.name == "qwen" and any(tok in t["content"] for tok in _QWEN_TOKENS):
                return None  # the row's own words hold Qwen's box tokens
            try:
                same = restore_text(content, conv, size)[0] == t["content"]
            except CoordError:  # the row's own words hold coordinate-like text off the grid
                same = False
            if not same:
                return None
        turns.append({"role": t["role"], "content": content})
    owl: dict[str, Any] = {"task": task, "source": row["source"], "split": row["split"], "image_id": row["image_id"]}
    geom = _GEOMETRY.get(task)
    for name in schemas.TASK_TABLES[task].names:
        if name not in _COMMON and name != geom:
            owl[name] = row[name]
    if task == "point_vqa":
        owl["point"] = render_point(point, conv, size)
    elif task == "grounding":
        owl["bbox"] = render_box(box, conv, size)
    return turns, owl


def restore_row(rid: str, image_id: str, turns: list[dict[str, str]], owl: dict[str, Any], conv: Convention,
                size: tuple[int, int]) -> tuple[str, dict[str, Any]]:
    """Inverse of :func:`render_row`: (task, corpus row).

    The text of a geometry task must hold exactly its one geometry: one point (point_vqa) or
    one box (grounding), every coordinate on the convention's grid and range, and no stray
    convention token (``<|box_start|>``...) left over.

    Raises:
        CoordError: geometry that does not parse strictly in the convention.
        KeyError: ``owl`` metadata without a needed field.
    """
    task = owl["task"]
    if task not in schemas.TASK_TABLES:
        raise CoordError(f"unknown task {task!r}")
    points: list[tuple[float, float]] = []
    boxes: list[list[float]] = []
    conversations = []
    for t in turns:
        content = t["content"]
        if task in _GEOMETRY:
            content, p, b = restore_text(content, conv, size)
            points += p
            boxes += [bb for bb, _ in b]
        conversations.append({"role": t["role"], "content": content})
    row: dict[str, Any] = {"id": rid, "image_id": image_id, "source": owl["source"], "split": owl["split"],
                           "conversations": conversations}
    geom = _GEOMETRY.get(task)
    for name in schemas.TASK_TABLES[task].names:
        if name not in _COMMON and name != geom:
            row[name] = owl[name]
    if task in _GEOMETRY:
        want = (1, 0) if task == "point_vqa" else (0, 1)
        if (len(points), len(boxes)) != want:
            raise CoordError(f"{task} text holds {len(points)} point(s) and {len(boxes)} box(es) of the "
                             f"{conv.name} convention; expected {want[0]} and {want[1]}")
        stray = [tok for tok in _QWEN_TOKENS if conv.name == "qwen" and any(tok in t["content"] for t in conversations)]
        if stray:
            raise CoordError(f"{task} text keeps {', '.join(stray)} that did not parse as a box")
    if task == "point_vqa":
        x, y = points[0]
        row["point"] = {"x": x, "y": y}
    elif task == "grounding":
        row["bbox"] = boxes[0]
    return task, row


# --- export ------------------------------------------------------------------------------

class _JsonList:
    """Streams a JSON list to a file, one record per line."""

    def __init__(self, path: Path) -> None:
        self._f = path.open("w", encoding="utf-8")
        self._f.write("[")
        self.n = 0

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(("\n" if self.n == 0 else ",\n") + json.dumps(record, ensure_ascii=False))
        self.n += 1

    def close(self) -> None:
        self._f.write("\n]\n")
        self._f.close()


def export_chat(corpus: Path, out: Path, layout: Layout, coords: str | Convention) -> ExportReport:
    """Export every task row of ``corpus`` as chat JSON in ``layout`` (see the module doc).

    Raises:
        FileNotFoundError: ``corpus`` is not a corpus.
        ExportError: ``out`` holds something else (see :func:`prepare_out`).
        ExportError: a row whose image is not stored.
        CoordError: an unknown convention.
    """
    corpus, out = Path(corpus), Path(out)
    conv = get_convention(coords)
    manifest = corpus_mod.read_manifest(corpus)
    parts = task_parts(corpus)
    info = image_info(corpus)
    prepare_out(out, EXPORT_OUT, corpus)
    with staged(out, "exporting") as staging:
        report = ExportReport(out=out, format=layout.name, coords=conv.name)
        skipped: dict[str, list[str]] = defaultdict(list)
        files: dict[str, dict[str, Any]] = {}
        needed: dict[str, str] = {}
        for part in parts:
            name = f"{part.task}_{part.split}.json"
            w = _JsonList(staging / name)
            try:
                for row, (fmt, width, height) in iter_part_rows(part, info):
                    done = render_row(part.task, row, conv, (width, height))
                    if done is None:
                        skipped["ambiguous_text"].append(row["id"])
                        continue
                    fname = needed.setdefault(row["image_id"], image_filename(row["image_id"], fmt))
                    w.write(layout.to_record(row["id"], f"images/{fname}", *done))
            finally:
                w.close()
            files[name] = {"task": part.task, "split": part.split, "rows": w.n}
            report.rows.setdefault(part.task, {})[part.split] = w.n
        (staging / "images").mkdir()
        for batch in iter_batches(sorted((corpus / "images").glob("part-*.parquet")), batch_size=64,
                                  columns=["image_id", "bytes"]):
            for iid, data in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
                if iid in needed:
                    (staging / "images" / needed[iid]).write_bytes(data)
        report.images = len(needed)
        report.skipped = dict(skipped)
        if layout.finish is not None:
            layout.finish(staging, files)
        write_sidecar(staging, layout.name, corpus, manifest, files, conv, len(needed), skipped)
    return report


# --- reading back --------------------------------------------------------------------------

def _reject(source: str, item: str, reason: str, detail: str) -> dict[str, str]:
    return {"source": source, "item": item, "stage": "import", "reason": reason, "detail": detail}


def load_export_json(path: Path) -> Any:
    """A JSON file of an export.

    Raises:
        ExportError: missing, undecodable or not JSON (truncated...), naming the file.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{path}: cannot read it as JSON ({msg}); re-export or restore the file") from None


def _row_problem(task: str, row: dict[str, Any]) -> tuple[str, str] | None:
    """(reason, detail) when a restored row would not be a valid corpus row, else None."""
    from owl_data.corpus.validate import row_problems

    if not (isinstance(row.get("split"), str) and SPLIT_NAME.fullmatch(row["split"])):
        return "bad_record", f"split {str(row.get('split'))[:40]!r} is not a plain name (letters, digits, _ . -)"
    why = placeholder_problem(task, row)
    if why:
        return "placeholder_in_text", why
    probs = row_problems(task, row)
    if probs:
        return "bad_record", "; ".join(probs)
    try:
        corpus_mod.to_table(task, [row])
    except SchemaError as exc:
        return "bad_record", str(exc)[:300]
    return None


def read_chat_export(folder: Path, layout: Layout) -> ReadBack:
    """Read an export of ``layout`` back as corpus rows (see :class:`ReadBack`).

    Records that cannot be read become rejects (``no_owl_metadata``, ``multi_image``,
    ``missing_image``, ``unreadable_image``, ``unparsable_coordinates`` (geometry text off
    the convention's grid or range, or not exactly the row's one point or box),
    ``placeholder_in_text`` (the central placeholder rule, :mod:`owl_data.conventions.placeholders`),
    ``duplicate_id`` (a row id already read), ``bad_record``); the item of a reject is the
    record's place, ``<file>#<index>``, so it is unique.

    Raises:
        ExportError: not an export of this format (no or another ``owl_export.json``), or a
            JSON file that does not parse (named).
    """
    folder = Path(folder)
    side_path = folder / SIDECAR
    if not side_path.is_file():
        raise ExportError(f"{folder} is not an Owl-VL export ({SIDECAR} is missing); "
                          f"foreign {layout.name} files are read by the build's {layout.name} source")
    sidecar = load_export_json(side_path)
    if not isinstance(sidecar, dict):
        raise ExportError(f"{side_path} holds a JSON {type(sidecar).__name__}, not an export description")
    if sidecar.get("format") != layout.name:
        raise ExportError(f"{folder} is a {sidecar.get('format')!r} export, not {layout.name}")
    coords, files = sidecar.get("coords"), sidecar.get("files")
    if not isinstance(coords, dict) or not isinstance(files, dict):
        raise ExportError(f"{side_path}: 'coords' and 'files' must be objects")
    try:
        conv = get_convention(Convention(coords.get("name"), coords.get("decimals") or 3))
    except (CoordError, TypeError) as exc:
        raise ExportError(f"{side_path}: coords {coords.get('name')!r}: {exc}") from None
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    images: dict[str, Path] = {}
    seen: dict[Path, tuple[str, tuple[int, int]] | None] = {}
    rejects: list[dict[str, str]] = []
    items: Counter = Counter()
    ids: dict[str, str] = {}
    root = folder.resolve()
    for name in files:
        path = (folder / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise ExportError(f"{side_path} lists {name!r}, which is not a file inside {folder}")
        records = load_export_json(path)
        if not isinstance(records, list):
            raise ExportError(f"{path}: holds a JSON {type(records).__name__}, not a list of records")
        for k, rec in enumerate(records):
            owl = rec.get("owl") if isinstance(rec, dict) else None
            item = f"{name}#{k}"
            source = owl.get("source") if isinstance(owl, dict) else None
            source = source if isinstance(source, str) else layout.name
            items[source] += 1
            if not isinstance(owl, dict):
                rejects.append(_reject(source, item, "no_owl_metadata", "record has no 'owl' object"))
                continue
            try:
                rid, paths, turns = layout.from_record(rec)
                if not all(isinstance(t["content"], str) for t in turns) or not all(isinstance(p, str) for p in paths):
                    raise ValueError("turn texts and image paths must be strings")
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                rejects.append(_reject(source, item, "bad_record", str(exc)[:300]))
                continue
            if len(paths) != 1:
                rejects.append(_reject(source, item, "multi_image", f"{rid}: {len(paths)} images"))
                continue
            img = (folder / paths[0]).resolve()
            if not img.is_relative_to(root) or not img.is_file():
                rejects.append(_reject(source, item, "missing_image", f"{rid}: {paths[0]}"))
                continue
            if img not in seen:
                try:
                    with Image.open(img) as im:
                        size = im.size
                    seen[img] = (hashlib.sha256(img.read_bytes()).hexdigest(), size)
                except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
                    seen[img] = None
            got = seen[img]
            if got is None:
                rejects.append(_reject(source, item, "unreadable_image", f"{rid}: {paths[0]}"))
                continue
            image_id, size = got
            try:
                task, row = restore_row(rid, image_id, turns, owl, conv, size)
            except (CoordError, KeyError, IndexError) as exc:
                rejects.append(_reject(source, item, "unparsable_coordinates", f"{rid}: {exc}"[:300]))
                continue
            except TypeError as exc:
                rejects.append(_reject(source, item, "bad_record", f"{rid}: {exc}"[:300]))
                continue
            bad = _row_problem(task, row)
            if bad is not None:
                rejects.append(_reject(source, item, bad[0], f"{rid}: {bad[1]}"[:300]))
                continue
            if rid in ids:
                rejects.append(_reject(source, item, "duplicate_id", f"id {rid} already read from {ids[rid]}"))
                continue
            ids[rid] = item
            images[image_id] = img
            rows[task].append(row)
    return ReadBack(rows=dict(rows), images=images, rejects=rejects, items=items, sidecar=sidecar)
