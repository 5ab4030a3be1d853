"""Chat-JSON exports read back as corpus rows (the inverse of :func:`owl_data.export.chat.export_chat`).

The export's ``owl_export.json`` names its format, coordinate convention and files; every
record of every file becomes a corpus row of its task (text geometry parsed strictly by
:func:`owl_data.export.text.restore_row`, the row checked like ``owl-data validate`` does) or
a reject row with its reason (:class:`~owl_data.errors.RejectError` per record).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, UnidentifiedImageError

from owl_data.conventions.coords import CoordError, Convention, get_convention
from owl_data.conventions.placeholders import placeholder_problem
from owl_data.corpus import writer as corpus_mod
from owl_data.corpus.schema import SchemaError
from owl_data.errors import RejectError
from owl_data.export.rows import ExportError
from owl_data.export.text import restore_row
from owl_data.records import SPLIT_NAME

if TYPE_CHECKING:
    from owl_data.export.chat import Layout

__all__ = ["SIDECAR", "ReadBack", "load_export_json", "read_chat_export"]

SIDECAR = "owl_export.json"


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


def _read_sidecar(folder: Path, layout: Layout) -> tuple[dict[str, Any], Convention, dict[str, Any]]:
    """The export's ``owl_export.json``: (the document, its convention, its ``files``).

    Raises:
        ExportError: no sidecar, another format, malformed ``coords`` or ``files``.
    """
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
        conv = get_convention(Convention(coords.get("name"), coords.get("decimals") or 3,
                                         point_space=coords.get("point_space") is True))  # absent: an older export
    except (CoordError, TypeError) as exc:
        raise ExportError(f"{side_path}: coords {coords.get('name')!r}: {exc}") from None
    return sidecar, conv, files


class _Reader:
    """Reads an export's records one by one into rows, images and rejects (:class:`ReadBack`).

    :meth:`record` takes one record; a record that cannot be read becomes a reject row, the
    item being its place ``<file>#<index>``. Image files are hashed and sized once each.
    """

    def __init__(self, folder: Path, layout: Layout, conv: Convention) -> None:
        self.folder, self.layout, self.conv = folder, layout, conv
        self.root = folder.resolve()
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.images: dict[str, Path] = {}
        self.rejects: list[dict[str, str]] = []
        self.items: Counter = Counter()
        self._ids: dict[str, str] = {}  # row id -> the item it was read from
        self._seen: dict[Path, tuple[str, tuple[int, int]] | None] = {}  # image -> (sha256, size) or None

    def record(self, item: str, rec: Any) -> None:
        """Read record ``rec`` (at ``item``) into a row, or into a reject row."""
        owl = rec.get("owl") if isinstance(rec, dict) else None
        source = owl.get("source") if isinstance(owl, dict) else None
        source = source if isinstance(source, str) else self.layout.name
        self.items[source] += 1
        try:
            if not isinstance(owl, dict):
                raise RejectError("no_owl_metadata", "record has no 'owl' object")
            rid, task, row, img = self._row(rec, owl)
            if rid in self._ids:
                raise RejectError("duplicate_id", f"id {rid} already read from {self._ids[rid]}")
        except RejectError as exc:
            self.rejects.append({"source": source, "item": item, "stage": "import", "reason": exc.reason,
                                 "detail": exc.detail})
            return
        self._ids[rid] = item
        self.images[row["image_id"]] = img
        self.rows[task].append(row)

    def _turns(self, rec: dict[str, Any]) -> tuple[str, list[str], list[dict[str, str]]]:
        """The layout's (id, image paths, turns) of ``rec``; RejectError ``bad_record``."""
        try:
            rid, paths, turns = self.layout.from_record(rec)
            if not all(isinstance(t["content"], str) for t in turns) or not all(isinstance(p, str) for p in paths):
                raise ValueError("turn texts and image paths must be strings")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RejectError("bad_record", str(exc)[:300]) from None
        return rid, paths, turns

    def _image(self, rid: str, paths: list[str]) -> tuple[Path, str, tuple[int, int]]:
        """The record's one image file: (path, sha256, size); RejectError ``multi_image``,
        ``missing_image`` or ``unreadable_image``."""
        if len(paths) != 1:
            raise RejectError("multi_image", f"{rid}: {len(paths)} images")
        img = (self.folder / paths[0]).resolve()
        if not img.is_relative_to(self.root) or not img.is_file():
            raise RejectError("missing_image", f"{rid}: {paths[0]}")
        if img not in self._seen:
            try:
                with Image.open(img) as im:
                    size = im.size
                self._seen[img] = (hashlib.sha256(img.read_bytes()).hexdigest(), size)
            except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
                self._seen[img] = None
        got = self._seen[img]
        if got is None:
            raise RejectError("unreadable_image", f"{rid}: {paths[0]}")
        return img, got[0], got[1]

    def _row(self, rec: dict[str, Any], owl: dict[str, Any]) -> tuple[str, str, dict[str, Any], Path]:
        """(row id, task, corpus row, image file) of a record; RejectError when it is unusable."""
        rid, paths, turns = self._turns(rec)
        img, image_id, size = self._image(rid, paths)
        try:
            task, row = restore_row(rid, image_id, turns, owl, self.conv, size)
        except (CoordError, KeyError, IndexError) as exc:
            raise RejectError("unparsable_coordinates", f"{rid}: {exc}"[:300]) from None
        except TypeError as exc:
            raise RejectError("bad_record", f"{rid}: {exc}"[:300]) from None
        bad = _row_problem(task, row)
        if bad is not None:
            raise RejectError(bad[0], f"{rid}: {bad[1]}"[:300])
        return rid, task, row, img


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
    sidecar, conv, files = _read_sidecar(folder, layout)
    reader = _Reader(folder, layout, conv)
    for name in files:
        path = (folder / name).resolve()
        if not path.is_relative_to(reader.root) or not path.is_file():
            raise ExportError(f"{folder / SIDECAR} lists {name!r}, which is not a file inside {folder}")
        records = load_export_json(path)
        if not isinstance(records, list):
            raise ExportError(f"{path}: holds a JSON {type(records).__name__}, not a list of records")
        for k, rec in enumerate(records):
            reader.record(f"{name}#{k}", rec)
    return ReadBack(rows=dict(reader.rows), images=reader.images, rejects=reader.rejects, items=reader.items,
                    sidecar=sidecar)
