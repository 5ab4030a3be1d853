"""Hugging Face hub-ready export: dataset card + Parquet with images embedded.

Layout::

    OUT/README.md                          card; YAML ``configs:`` one config per task, its splits
    OUT/<task>/<split>/part-NNNNN.parquet  the task's columns + ``image`` (datasets ``Image``)
    OUT/owl_export.json                    format, corpus fingerprint and sources, files

Each row carries its image as the ``datasets`` ``Image`` feature, a struct ``{bytes, path}``
with the stored bytes (never null) and ``path`` = ``<image_id>.<ext>``. The Parquet schema
holds the ``huggingface`` metadata key (the feature types, ``Features.arrow_schema``), so
``datasets.load_dataset(OUT, "point_vqa")`` decodes images offline, and the Owl-VL schema
version (``owl.schema_version``). Geometry stays data, as in the corpus: ``point {x, y}`` and
xyxy boxes normalised to [0, 1]; ``<point>`` / ``<box>`` stay placeholders in the text.
Row groups hold at most 100 rows (the Hub viewer's advice for image datasets) or 64 MiB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from owl_data.corpus import schema as schemas
from owl_data.corpus import writer as corpus_mod
from owl_data.corpus.read import CorpusReader
from owl_data.export.chat import EXPORT_OUT, ExportReport, prepare_out, write_sidecar
from owl_data.fs import inside, staged
from owl_data.export.rows import ExportError, ImageIndex, image_filename, image_info, iter_part_rows, task_parts

__all__ = ["export_hf", "hf_features", "write_card"]

ROWS_PER_GROUP = 100
MAX_GROUP_BYTES = 64 << 20
MAX_SHARD_BYTES = 512 << 20


def hf_features(task: str) -> datasets.Features:
    """The ``datasets`` features of an exported ``task``: its columns + ``image`` after ``image_id``."""
    base = datasets.Features.from_arrow_schema(schemas.TASK_TABLES[task])
    feats: dict[str, Any] = {}
    for name, f in base.items():
        feats[name] = f
        if name == "image_id":
            feats["image"] = datasets.Image()
    return datasets.Features(feats)


def _schema(task: str) -> pa.Schema:
    s = hf_features(task).arrow_schema
    meta = dict(s.metadata or {})
    meta.update({b"owl.schema_version": schemas.SCHEMA_VERSION.encode(), b"owl.table": task.encode(),
                 b"owl.export": b"hf"})
    return s.with_metadata(meta)


def _part_writer(folder: Path, task: str) -> corpus_mod.ShardWriter:
    """The Parquet part writer of one exported task and split: row groups of at most
    ROWS_PER_GROUP rows, a group ends with the row that brings its image bytes (+1 KiB per row)
    to MAX_GROUP_BYTES, shards of about MAX_SHARD_BYTES."""
    return corpus_mod.ShardWriter(folder, task, max_batch_bytes=MAX_GROUP_BYTES, max_shard_bytes=MAX_SHARD_BYTES,
                                  batch_rule="reach", max_batch_rows=ROWS_PER_GROUP, schema=_schema(task),
                                  row_bytes=lambda row: len(row["image"]["bytes"]) + 1024)


def write_card(folder: Path, manifest: dict[str, Any], rows: dict[str, dict[str, int]]) -> None:
    """``README.md``: YAML ``configs:`` (one per task, its splits) and a description."""
    lines = ["---", "configs:"]
    for i, (task, per) in enumerate(rows.items()):
        lines.append(f"- config_name: {task}")
        if i == 0:
            lines.append("  default: true")
        lines.append("  data_files:")
        for split in per:
            lines += [f"  - split: {split}", f"    path: \"{task}/{split}/*.parquet\""]
    lines += ["---", "", "# Owl-VL corpus", ""]
    lines.append(
        "Point-guided VQA, VQA, captioning and grounding rows exported by `owl-data export --format hf` "
        f"(schema {manifest.get('schema_version')}). Load one task with "
        "`datasets.load_dataset(REPO_OR_DIR, \"point_vqa\")`."
    )
    lines += [
        "",
        "- `image`: the image (`Image` feature, bytes embedded); `image_id` is the sha256 of its bytes.",
        "- `conversations`: `[{role, content}]`; user text holds `<image>` and, for points, `<point>`; "
        "a grounding answer `<box>` stands for the row's `bbox`.",
        "- Geometry is data: `point {x, y}` and boxes `[x1, y1, x2, y2]` normalised to [0, 1] in the image's "
        "frame (x right, y down, continuous: pixel column j has its centre at (j + 0.5) / W).",
        "",
        "| config | split | rows |",
        "|---|---|---|",
    ]
    for task, per in rows.items():
        for split, n in per.items():
            lines.append(f"| {task} | {split} | {n} |")
    sources = manifest.get("sources", {})
    if sources:
        lines += ["", "| source | synthetic | items read | kept | rejected |", "|---|---|---|---|---|"]
        for name, s in sorted(sources.items()):
            lines.append(f"| {name} | {s.get('synthetic', False)} | {s.get('items_read')} | "
                         f"{s.get('items_kept')} | {s.get('items_rejected')} |")
    lines.append(f"\nCorpus fingerprint: `{manifest.get('fingerprint')}`\n")
    (Path(folder) / "README.md").write_text("\n".join(lines))


def export_hf(corpus: Path, out: Path, *, overwrite: bool = False) -> ExportReport:
    """Write the hub-ready folder of ``corpus`` at ``out`` (atomically).

    Raises:
        FileNotFoundError: ``corpus`` is not a corpus.
        CorpusChangedError: the corpus differs from its manifest's fingerprint (recomputed up
            front only for a manifest without shard hashes), or was rebuilt while being read.
        DamagedShardError: a shard that differs from the manifest's hash (named), found as
            the shard is opened (:mod:`owl_data.corpus.read`).
        ExportError: ``out`` holds something else, or an export of another format and not
            ``overwrite`` (:func:`owl_data.export.chat.prepare_out`).
        ExportError: a row whose image is not stored; a corpus without task rows.
    """
    corpus, out = Path(corpus), Path(out)
    reader = CorpusReader(corpus, legacy_check=True)
    manifest = reader.manifest
    parts = task_parts(reader)
    if not parts:
        raise ExportError(f"{corpus} has no task rows to export")
    info = image_info(reader)
    index = ImageIndex(reader)
    prepare_out(out, EXPORT_OUT, corpus, fmt="hf", overwrite=overwrite)
    with staged(out, "exporting") as staging:
        report = ExportReport(out=out, format="hf", coords=None)
        files: dict[str, dict[str, Any]] = {}
        used: set[str] = set()
        for part in parts:
            with _part_writer(inside(staging, f"{part.task}/{part.split}"), part.task) as w:
                for row, (fmt, _, _) in iter_part_rows(part, info):
                    iid = row["image_id"]
                    row["image"] = {"bytes": index.get(iid), "path": image_filename(iid, fmt)}
                    used.add(iid)
                    w.write([row])
            report.rows.setdefault(part.task, {})[part.split] = w.rows
            for f in w.files:
                files[f.relative_to(staging).as_posix()] = {"task": part.task, "split": part.split,
                                                            "rows": pq.read_metadata(f).num_rows}
        report.images = len(used)
        write_card(staging, manifest, report.rows)
        write_sidecar(staging, "hf", corpus, manifest, files, None, len(used), {})
    return report

