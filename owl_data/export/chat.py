"""Chat-JSON exports (LLaVA, ShareGPT): the one export driver and reader both formats share.

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

:mod:`owl_data.export.readback` reads an export back as corpus rows, and
:mod:`owl_data.export.importer` writes those as a corpus.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from owl_data.corpus import schema as schemas
from owl_data.corpus.read import CorpusReader
from owl_data.conventions.coords import DEFAULT_CONVENTION, Convention, get_convention
from owl_data.export.rows import ExportSettingError, Part, image_filename, image_info, iter_batches, \
    iter_part_rows, task_parts
from owl_data.export.readback import SIDECAR, ReadBack, load_export_json, read_chat_export
from owl_data.export.text import render_row, restore_row
from owl_data.fs import OutputError, OutputKind, check_out, inside, json_marker, staged

__all__ = ["SIDECAR", "EXPORT_OUT", "load_export_json", "Layout", "ExportReport", "ReadBack", "export_chat",
           "read_chat_export", "prepare_out",
           "render_row", "restore_row"]



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

    def export(self, corpus: Path, out: Path, coords: str | Convention = DEFAULT_CONVENTION, *,
               overwrite: bool = False) -> "ExportReport":
        """Write ``corpus`` at ``out`` in this format: one ``<task>_<split>.json`` each, ``images/``,
        ``owl_export.json`` and what ``finish`` adds (:func:`export_chat`).

        Raises:
            FileNotFoundError: not a corpus. ExportError: ``out`` holds something else.
            CoordError: an unknown convention.
        """
        return export_chat(corpus, out, self, coords, overwrite=overwrite)

    def read(self, folder: Path) -> "ReadBack":
        """Read an export of this format back as corpus rows (:func:`read_chat_export`)."""
        return read_chat_export(folder, self)


@dataclass
class ExportReport:
    """What an export wrote."""

    out: Path
    format: str
    coords: str | None
    rows: dict[str, dict[str, int]] = field(default_factory=dict)  # task -> split -> rows
    images: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> row ids


# --- folders ------------------------------------------------------------------------------

_EXPORT_NAMES = re.compile(r"(owl_export\.json|README\.md|dataset_info\.json|images|"
                           r"(%s)(_[A-Za-z0-9_.-]+\.json)?)" % "|".join(schemas.TASK_TABLES))
EXPORT_OUT = OutputKind(what="an Owl-VL export", marker=SIDECAR,
                        recognise=json_marker(lambda d: d.get("format") in ("hf", "llava", "sharegpt")),
                        owned=lambda name: _EXPORT_NAMES.fullmatch(name) is not None, example="export")


def prepare_out(out: Path, kind: OutputKind, source: Path | None = None, *, fmt: str | None = None,
                overwrite: bool = False) -> Path:
    """Check ``out`` (:func:`owl_data.fs.check_out`) before anything is written.

    ``out`` may be missing, empty, or an earlier result of the same command holding nothing
    else; anything else is refused rather than replaced, and so is an ``out`` inside
    ``source`` (the folder read) or holding it. An export (``fmt`` given) replaces an earlier
    export only of the same format unless ``overwrite``.

    Raises:
        ExportSettingError: of field ``out``: the reasons of :func:`~owl_data.fs.check_out`, or
            an earlier export of another format (field ``overwrite`` named as the way out).
    """
    try:
        checked = check_out(out, kind=kind, reads={"the folder read": source} if source is not None else None)
    except OutputError as exc:
        raise ExportSettingError(exc.field, str(exc)) from None
    side = Path(out) / SIDECAR
    if fmt is not None and not overwrite and side.is_file():
        old = load_export_json(side)
        old_fmt = old.get("format") if isinstance(old, dict) else None
        if old_fmt != fmt:
            raise ExportSettingError("out", f"out {out} holds a {old_fmt} export; a {fmt} export would replace it: "
                                     "give a new `out`, or pass `overwrite` to replace it")
    return checked


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


def _write_part(staging: Path, part: Part, info: dict[str, tuple[str, int, int]], layout: Layout,
                conv: Convention, needed: dict[str, str], skipped: dict[str, list[str]]) -> tuple[str, int]:
    """One ``<task>_<split>.json``: every row of ``part`` rendered (ambiguous ones into
    ``skipped``), the images it needs into ``needed`` (image_id -> file name). Returns
    (file name, records written)."""
    name = f"{part.task}_{part.split}.json"
    w = _JsonList(inside(staging, name))
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
    return name, w.n


def _copy_images(reader: CorpusReader, folder: Path, needed: dict[str, str]) -> None:
    """The stored bytes of every needed image into ``folder`` (image_id -> file name)."""
    folder.mkdir()
    for batch in iter_batches(reader, reader.files("images"), batch_size=64, columns=["image_id", "bytes"]):
        for iid, data in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
            if iid in needed:
                inside(folder, needed[iid]).write_bytes(data)


def export_chat(corpus: Path, out: Path, layout: Layout, coords: str | Convention, *,
                overwrite: bool = False) -> ExportReport:
    """Export every task row of ``corpus`` as chat JSON in ``layout`` (see the module doc).

    Raises:
        FileNotFoundError: ``corpus`` is not a corpus.
        CorpusChangedError: the corpus differs from its manifest's fingerprint (recomputed up
            front only for a manifest without shard hashes), or was rebuilt while being read.
        DamagedShardError: a shard that differs from the manifest's hash (named), found as
            the shard is opened (:mod:`owl_data.corpus.read`).
        ExportError: ``out`` holds something else (see :func:`prepare_out`).
        ExportError: a row whose image is not stored; an image_id that is not a sha256 hex.
        CoordError: an unknown convention.
    """
    corpus, out = Path(corpus), Path(out)
    conv = get_convention(coords)
    reader = CorpusReader(corpus, legacy_check=True)
    manifest = reader.manifest
    parts = task_parts(reader)
    info = image_info(reader)
    prepare_out(out, EXPORT_OUT, corpus, fmt=layout.name, overwrite=overwrite)
    with staged(out, "exporting") as staging:
        report = ExportReport(out=out, format=layout.name, coords=conv.name)
        skipped: dict[str, list[str]] = defaultdict(list)
        files: dict[str, dict[str, Any]] = {}
        needed: dict[str, str] = {}
        for part in parts:
            name, n = _write_part(staging, part, info, layout, conv, needed, skipped)
            files[name] = {"task": part.task, "split": part.split, "rows": n}
            report.rows.setdefault(part.task, {})[part.split] = n
        _copy_images(reader, staging / "images", needed)
        report.images = len(needed)
        report.skipped = dict(skipped)
        if layout.finish is not None:
            layout.finish(staging, files)
        write_sidecar(staging, layout.name, corpus, manifest, files, conv, len(needed), skipped)
    return report
