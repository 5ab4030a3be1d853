"""``owl-data validate``: a corpus checked against its schemas and invariants.

Checks: every shard the manifest lists is on disk with the size and sha256 it records, and
none on disk is unlisted (each damaged shard named once, the others still checked; a manifest
without ``shards`` gets a note and the whole fingerprint recomputed instead); every shard's
schema equals :mod:`schemas` and carries the schema version; points
inside [0, 1]; bboxes of 4 values, ordered and inside [0, 1]; every stored ``image_id`` a
sha256 hex (exports use it as a file name); every ``image_id`` of every row resolvable in ``images``; row ids unique per table; splits of rows equal their image's
split; row counts and the fingerprint equal the manifest's; per source, items read = kept
+ rejected, and the per-reason reject counts, items rejected and the source's rows in the
rejects table are one number; no item has two reject rows; every task row obeys the
placeholder rule (:func:`owl_data.conventions.placeholders.placeholder_problem`: exactly one ``<image>``
in the first user turn, ``<point>``/``<box>`` only where their task puts them).

:func:`row_problems` holds the per-row checks; ``import-llava`` applies the same ones to
every row it reads back.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow.parquet as pq

from owl_data.corpus import schema as schemas
from owl_data.corpus import writer as corpus_mod
from owl_data.corpus.read import CorpusReader, DamagedShardError
from owl_data.conventions.placeholders import placeholder_problem

__all__ = ["ValidationReport", "validate_corpus", "row_problems"]


@dataclass
class ValidationReport:
    """Problems found (empty when the corpus is valid), notes (what could not be checked, not
    a problem) and what was checked."""

    problems: list[str] = field(default_factory=list)
    checked_rows: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Shards:
    """The corpus's shards for one validation: each opened checked (:class:`CorpusReader`); a
    damaged one is reported once (``problem``), and still checked by the other checks when its
    bytes parse as Parquet (so validate also says what changed in it), else skipped."""

    def __init__(self, reader: CorpusReader, problem: "Problem") -> None:
        self.reader, self.problem = reader, problem
        self.damaged: set[str] = set()  # reported
        self.unreadable: set[str] = set()
        self._plain = CorpusReader(reader.root, {k: v for k, v in reader.manifest.items() if k != "shards"})

    def files(self, table: str) -> list[str]:
        """The table's shards (relative): the manifest's, or those on disk without ``shards``."""
        r = self.reader
        if r.shards is None:
            return r.on_disk(table)
        return sorted(rel for rel in r.shards if rel.startswith(table + "/"))

    def open(self, rel: str) -> pq.ParquetFile | None:
        """The checked shard, or None (reported) when it is damaged; images are streamed."""
        if rel in self.unreadable:
            return None
        in_memory = not rel.startswith("images/")
        try:
            return (self._plain if rel in self.damaged else self.reader).open(rel, in_memory=in_memory)
        except DamagedShardError as exc:
            if rel not in self.damaged:
                self.damaged.add(rel)
                self.problem(str(exc))
        try:
            return self._plain.open(rel, in_memory=in_memory)
        except DamagedShardError:
            self.unreadable.add(rel)
            return None

    def each(self, table: str):
        """(relative path, ParquetFile) of every readable shard of ``table``."""
        for rel in self.files(table):
            pf = self.open(rel)
            if pf is not None:
                yield rel, pf


def _bbox_ok(b) -> bool:
    return (isinstance(b, (list, tuple)) and len(b) == 4 and all(_finite01(v) for v in b)
            and b[0] <= b[2] and b[1] <= b[3])


def _finite01(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1


def row_problems(task: str, r: dict) -> list[str]:
    """What is wrong with one task row on its own (placeholders, geometry, enums); [] if nothing."""
    out = []
    why = placeholder_problem(task, r)
    if why:
        out.append(f"placeholders: {why}")
    if task == "point_vqa":
        p = r.get("point") or {}
        if not (isinstance(p, dict) and _finite01(p.get("x")) and _finite01(p.get("y"))):
            out.append(f"point {p} outside [0, 1]")
        bbox = (r.get("target") or {}).get("bbox")
        if not _bbox_ok(bbox):
            out.append(f"target bbox {bbox} not ordered in [0, 1]")
        if r.get("point_origin") not in ("mask", "box", "annotated"):
            out.append(f"point_origin {r.get('point_origin')!r}")
        if r.get("kind") not in ("description", "reasoning"):
            out.append(f"kind {r.get('kind')!r}")
    if task == "grounding" and not _bbox_ok(r.get("bbox")):
        out.append(f"bbox {r.get('bbox')} not ordered in [0, 1]")
    return out


Problem = Callable[[str], None]  # records one problem (the report keeps the first ``max_problems``)


def _check_shards(shards: _Shards, rep: ValidationReport) -> None:
    """Every shard on disk is listed; every listed one opens with its recorded size and sha256
    (a note instead when the manifest records no shard hashes)."""
    r = shards.reader
    if r.shards is None:
        rep.notes.append(f"{r.root}/{corpus_mod.MANIFEST} records no shard hashes (a corpus written before they "
                         "were): shards were checked by the whole fingerprint only; rebuild to record them")
        return
    for rel in r.unlisted():
        shards.damaged.add(rel)
        shards.problem(str(DamagedShardError(r.root, rel, "not listed in the manifest")))
    for rel in sorted(r.shards):
        shards.open(rel)


def _check_schemas(shards: _Shards, problem: Problem) -> None:
    """Every shard's schema equals its table's and carries the schema version."""
    for table, want in schemas.TABLES.items():
        for rel, pf in shards.each(table):
            s = pf.schema_arrow
            meta = s.metadata or {}
            if meta.get(b"owl.schema_version") != schemas.SCHEMA_VERSION.encode():
                problem(f"{rel}: schema version {meta.get(b'owl.schema_version')!r}")
            if not s.remove_metadata().equals(want.remove_metadata()):
                problem(f"{rel}: schema differs from {table} {schemas.SCHEMA_VERSION}")


def _check_images(shards: _Shards, problem: Problem) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """Images stored once with a positive size; every ref resolvable. Returns (image_id ->
    split, the row counts of ``images`` and ``image_refs``)."""
    image_split: dict[str, str] = {}
    for _, pf in shards.each("images"):
        t = pf.read(columns=["image_id", "split", "width", "height"])
        for iid, sp, w, h in zip(*(t.column(c).to_pylist() for c in ("image_id", "split", "width", "height"))):
            if not schemas.is_image_id(iid):
                problem(f"images: image_id {str(iid)[:80]!r} is not a sha256 hex (64 lowercase hex digits)")
            if iid in image_split:
                problem(f"images: image_id {iid} stored twice")
            if not (w and h and w > 0 and h > 0):
                problem(f"images: {iid} has size {w}x{h}")
            image_split[iid] = sp
    n_refs = 0
    for _, pf in shards.each("image_refs"):
        n_refs += pf.metadata.num_rows
        for iid in pf.read(columns=["image_id"]).column("image_id").to_pylist():
            if iid not in image_split:
                problem(f"image_refs: {iid} not in images")
    counts = {"images": {"all": len(image_split)}, "image_refs": {"all": n_refs}}
    return image_split, counts


def _check_task(shards: _Shards, task: str, image_split: dict[str, str], rep: ValidationReport,
                problem: Problem) -> dict[str, int]:
    """Every row of ``task``: unique id, a stored image of the same split as the row and its
    folder, :func:`row_problems`. Returns split -> rows."""
    ids: set[str] = set()
    per_split: dict[str, int] = {}
    for rel, pf in shards.each(task):
        split_dir = Path(rel).parent.name
        rows = pf.read().to_pylist()
        per_split[split_dir] = per_split.get(split_dir, 0) + len(rows)
        for r in rows:
            rep.checked_rows += 1
            where = f"{task}/{split_dir} row {r['id']}"
            if r["id"] in ids:
                problem(f"{where}: duplicate id")
            ids.add(r["id"])
            if r["image_id"] not in image_split:
                problem(f"{where}: image_id {r['image_id']} not in images")
            elif image_split[r["image_id"]] != r["split"] or r["split"] != split_dir:
                problem(f"{where}: split {r['split']} vs image {image_split[r['image_id']]} / folder {split_dir}")
            for why in row_problems(task, r):
                problem(f"{where}: {why}")
    return per_split


def _check_manifest(corpus: Path, manifest: dict, counts: dict[str, dict[str, int]], problem: Problem,
                    hashed: bool) -> None:
    """Row counts and the fingerprint equal the manifest's (recomputed only when the manifest
    has no ``shards``: else it follows from the shard hashes checked); per source, read = kept
    + rejected."""
    want_counts = {t: c for t, c in manifest.get("rows", {}).items() if any(c.values())}
    have_counts = {t: c for t, c in counts.items() if any(c.values())}
    if want_counts != have_counts:
        problem(f"row counts {have_counts} differ from the manifest's {want_counts}")
    fp = None if hashed else corpus_mod.fingerprint(corpus)
    if fp is not None and fp != manifest.get("fingerprint"):
        problem(f"fingerprint {fp} differs from the manifest's {manifest.get('fingerprint')}")
    for name, s in manifest.get("sources", {}).items():
        if s["items_read"] != s["items_kept"] + s["items_rejected"]:
            problem(f"source {name}: items read {s['items_read']} != kept {s['items_kept']} + rejected {s['items_rejected']}")
        if "frames" in s:  # builds since the ?frame= option; older manifests have none
            _check_frames(name, s["frames"], problem)


def _check_frames(name: str, frames: object, problem: Problem) -> None:
    """A source's ``frames``: exactly ``upright``, ``raw``, ``ambiguous``, counts that are
    whole numbers >= 0, ambiguous images at most the images counted."""
    keys = ("upright", "raw", "ambiguous")
    if not isinstance(frames, dict) or sorted(frames) != sorted(keys) or not all(
            isinstance(frames[k], int) and not isinstance(frames[k], bool) and frames[k] >= 0 for k in keys):
        problem(f"source {name}: frames {frames!r} is not {{upright, raw, ambiguous}} of counts >= 0")
    elif frames["ambiguous"] > frames["upright"] + frames["raw"]:
        problem(f"source {name}: frames: {frames['ambiguous']} ambiguous of {frames['upright'] + frames['raw']} images")


def _check_rejects(shards: _Shards, manifest: dict, problem: Problem) -> None:
    """The rejects table: its total, per source its rows = items rejected = the per-reason
    sum, one row per item, no source the manifest does not list."""
    tables = [pf.read(columns=["source", "item"]) for _, pf in shards.each("rejects")]
    n_rej = sum(t.num_rows for t in tables)
    if n_rej != manifest.get("rejects", {}).get("total", 0):
        problem(f"rejects table has {n_rej} rows, manifest says {manifest.get('rejects', {}).get('total')}")
    rej_rows: Counter = Counter()
    rej_items: set[tuple[str, str]] = set()
    for t in tables:
        for src, item in zip(t.column("source").to_pylist(), t.column("item").to_pylist()):
            rej_rows[src] += 1
            if (src, item) in rej_items:
                problem(f"rejects: item {item!r} of source {src} has more than one row")
            rej_items.add((src, item))
    sources = manifest.get("sources", {})
    for name, s in sources.items():
        by_reason = sum(s.get("rejects", {}).values())
        if not by_reason == s["items_rejected"] == rej_rows[name]:
            problem(f"source {name}: rejects by reason sum to {by_reason}, items rejected {s['items_rejected']}, "
                    f"rejects table holds {rej_rows[name]} rows")
    for name in sorted(set(rej_rows) - set(sources)):
        problem(f"rejects table has {rej_rows[name]} rows of source {name!r}, which the manifest does not list")


def validate_corpus(corpus: Path, *, max_problems: int = 50) -> ValidationReport:
    """Validate ``corpus``; never raises on a bad corpus, reports instead (the first
    ``max_problems`` problems, in the order of the module docstring's checks).

    Raises:
        FileNotFoundError: ``corpus`` has no manifest.
        SchemaError: a manifest of another schema version or with malformed ``shards``.
        CorpusChangedError: the corpus was rebuilt while it was being validated.
    """
    corpus = Path(corpus)
    rep = ValidationReport()
    manifest = corpus_mod.read_manifest(corpus)

    def problem(msg: str) -> None:
        if len(rep.problems) < max_problems:
            rep.problems.append(msg)

    try:
        reader = CorpusReader(corpus, manifest)
    except DamagedShardError as exc:  # shards that do not add up to the fingerprint
        problem(str(exc))
        reader = CorpusReader(corpus, {k: v for k, v in manifest.items() if k != "shards"})
    shards = _Shards(reader, problem)
    _check_shards(shards, rep)
    _check_schemas(shards, problem)
    image_split, counts = _check_images(shards, problem)
    for task in schemas.TASK_TABLES:
        per_split = _check_task(shards, task, image_split, rep, problem)
        if per_split:
            counts[task] = dict(sorted(per_split.items()))
    _check_manifest(corpus, manifest, counts, problem, reader.hashed)
    _check_rejects(shards, manifest, problem)
    return rep
