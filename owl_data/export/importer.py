"""An LLaVA or ShareGPT export read back into a corpus (``owl-data import-llava``).

The steps: the export's format from its ``owl_export.json`` (:func:`_export_layout`), the
records read back as corpus rows (:func:`owl_data.export.chat.read_chat_export`), then the
corpus tables written like a build's: images and their refs, task rows per split, rejects,
and the manifest (:func:`owl_data.corpus.manifest.corpus_manifest`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from PIL import Image

from owl_data.corpus import schema as schemas
from owl_data.corpus import writer as corpus_mod
from owl_data.corpus.manifest import corpus_manifest, source_entry
from owl_data.export.chat import SIDECAR, Layout, ReadBack, load_export_json, prepare_out, read_chat_export
from owl_data.export.rows import ExportError
from owl_data.fs import CORPUS_OUT, staged

__all__ = ["import_export"]


def _export_layout(folder: Path) -> Layout:
    """The chat layout ``owl_export.json`` names.

    Raises:
        ExportError: no sidecar, or a format other than llava and sharegpt (hf included).
    """
    from owl_data.export.llava import LLAVA
    from owl_data.export.sharegpt import SHAREGPT

    foreign = (f"a LLaVA or ShareGPT dataset from elsewhere is read as a build source instead: "
               f"owl-data build --source llava=FILE.json --out CORPUS")
    if folder.is_file():
        raise ExportError(f"{folder} is a file, not an Owl-VL llava or sharegpt export: import-llava reads the "
                          f"folder `owl-data export --format llava|sharegpt` writes (with its {SIDECAR}); {foreign}")
    side = folder / SIDECAR
    if not side.is_file():
        raise ExportError(f"{folder} has no {SIDECAR}: not an Owl-VL llava or sharegpt export (the folder "
                          f"`owl-data export --format llava|sharegpt` writes); {foreign}")
    doc = load_export_json(side)
    fmt = doc.get("format") if isinstance(doc, dict) else None
    layouts = {"llava": LLAVA, "sharegpt": SHAREGPT}
    if fmt == "hf":
        raise ExportError(f"{folder} is an hf export, not an Owl-VL llava or sharegpt export: its Parquet shards "
                          "are a corpus already")
    if not isinstance(fmt, str) or fmt not in layouts:
        raise ExportError(f"{folder} is not an Owl-VL llava or sharegpt export: its {SIDECAR} names format "
                          f"{str(fmt)[:40]!r}")
    return layouts[fmt]


def _write_images(staging: Path, folder: Path, back: ReadBack, rows_count: dict[str, dict[str, int]]) -> dict[str, str]:
    """``images`` and ``image_refs`` from the export's image files (group = image_id); each
    image's split and source are those of its first row. Returns image_id -> split."""
    image_split: dict[str, str] = {}
    image_source: dict[str, str] = {}
    for task_rows in back.rows.values():
        for r in task_rows:
            image_split.setdefault(r["image_id"], r["split"])
            image_source.setdefault(r["image_id"], r["source"])
    with corpus_mod.ShardWriter(staging / "images", "images") as w_img, \
            corpus_mod.ShardWriter(staging / "image_refs", "image_refs") as w_ref:
        for iid, path in back.images.items():
            with Image.open(path) as im:
                fmt_, (width, height) = (im.format or "").lower(), im.size
            w_img.write([{"image_id": iid, "bytes": path.read_bytes(), "format": fmt_, "width": width,
                          "height": height, "split": image_split[iid]}])
            w_ref.write([{"image_id": iid, "source": image_source[iid],
                          "source_path": path.relative_to(folder.resolve()).as_posix(), "group": iid}])
    rows_count["images"]["all"] = w_img.rows
    rows_count["image_refs"]["all"] = w_ref.rows
    return image_split


def _write_task_rows(staging: Path, back: ReadBack, image_split: dict[str, str],
                     rows_count: dict[str, dict[str, int]]) -> tuple[Counter, dict[str, Counter]]:
    """Every task's rows, per split (a row follows its image's split). Returns (rows kept per
    source, source -> task -> rows)."""
    kept: Counter = Counter()
    by_source: dict[str, Counter] = defaultdict(Counter)
    for task in schemas.TASK_TABLES:
        per_split: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in back.rows.get(task, []):
            r["split"] = image_split[r["image_id"]]
            per_split[r["split"]].append(r)
            kept[r["source"]] += 1
            by_source[r["source"]][task] += 1
        for split, rs in sorted(per_split.items()):
            with corpus_mod.ShardWriter(staging / task / split, task) as w:
                w.write(rs)
            rows_count[task][split] = w.rows
    return kept, by_source


def _write_rejects(staging: Path, back: ReadBack) -> dict[str, Counter]:
    """The ``rejects`` table (records that could not be read back). Returns source -> reason -> rows."""
    reasons: dict[str, Counter] = defaultdict(Counter)
    if back.rejects:
        with corpus_mod.ShardWriter(staging / "rejects", "rejects") as w_rej:
            w_rej.write(back.rejects)
        for rej in back.rejects:
            reasons[rej["source"]][rej["reason"]] += 1
    return reasons


def _imported_manifest(folder: Path, back: ReadBack, rows_count: dict[str, dict[str, int]], kept: Counter,
                       by_source: dict[str, Counter], reasons: dict[str, Counter]) -> dict[str, Any]:
    """The manifest of the imported corpus: ``build_config`` None, ``imported_from`` the
    export (format, path, coords, the exported corpus's fingerprint); a source's items are
    its records read, kept those read back as rows."""
    corpus = back.sidecar.get("corpus", {})
    synthetic = {n: s.get("synthetic", False) for n, s in corpus.get("sources", {}).items()}
    sources = {name: source_entry(str(folder), synthetic.get(name, False), n, kept[name], n - kept[name],
                                  reasons[name], by_source[name])
               for name, n in sorted(back.items.items())}
    provenance = {"build_config": None,
                  "imported_from": {"format": back.sidecar["format"], "path": str(folder),
                                    "coords": back.sidecar["coords"], "corpus_fingerprint": corpus.get("fingerprint")}}
    return corpus_manifest(provenance, sources, rows_count, reasons)


def import_export(folder: Path, out: Path) -> dict[str, Any]:
    """Write an LLaVA or ShareGPT export (``owl_export.json`` says which) as a corpus at ``out``.

    Row ids, tasks, sources, splits, texts and exact fields come back as exported; points and
    boxes come back within one unit of the export's convention. Images are the export's files
    (their sha256 is the ``image_id``); ``image_refs`` point at them (group = image_id, the
    original groups are not exported). The corpus is written atomically like a build's.
    Every row read back passes the checks of ``owl-data validate`` (placeholders, geometry,
    unique ids) or is rejected with its reason.

    Returns:
        the manifest written.

    Raises:
        ExportError: not an export, an export in hf format, a JSON file that does not parse.
            Also ``out`` holding something else (:func:`owl_data.export.chat.prepare_out`).
    """
    folder, out = Path(folder), Path(out)
    layout = _export_layout(folder)
    prepare_out(out, CORPUS_OUT, folder)
    back = read_chat_export(folder, layout)
    with staged(out, "importing") as staging:
        rows_count: dict[str, dict[str, int]] = defaultdict(dict)
        image_split = _write_images(staging, folder, back, rows_count)
        kept, by_source = _write_task_rows(staging, back, image_split, rows_count)
        reasons = _write_rejects(staging, back)
        manifest = corpus_mod.finish_corpus(staging, _imported_manifest(folder, back, rows_count, kept,
                                                                         by_source, reasons))
    return manifest
