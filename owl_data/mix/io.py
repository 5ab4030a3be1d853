"""Mixes on disk: ``MIX/mix.parquet`` (the picks) and ``MIX/mix.json`` (spec + corpus fingerprint).

``mix.parquet`` has one row per pick in global order: ``position`` (int64), ``task``,
``source`` (the row's corpus ``source``), ``id`` (the row's corpus id), ``epoch`` (of its
leaf: task, or task/source when nested), and ``file``/``row`` (the corpus shard, relative
to CORPUS, and the row's index in it, for direct reads). ``mix.json`` holds the format, the
full :class:`~owl_data.mix.spec.MixSpec`, the options that set the length, the split, per-leaf
row counts and the corpus fingerprint. A leaf's rows are the task table's rows of the split
(filtered by source when nested) in shard order then row order.

A mix refuses a corpus whose manifest fingerprint differs from the mix's (when reading rows
back): :class:`CorpusChangedError`. Every shard is checked against the manifest's hash as it is
opened (:mod:`owl_data.corpus.read`: a damaged one is :class:`DamagedShardError`, a corpus
rebuilt meanwhile "changed while reading"); a corpus whose manifest records no shard hashes
has its whole fingerprint recomputed up front instead. Bad settings raise
:class:`~owl_data.errors.FieldError` naming the :class:`MixConfig` field (a later mention of
another field is written in backquotes, e.g. `tasks`; the CLI shows both as flags).
Realised counts and deviations of a written mix: :mod:`owl_data.mix.stats`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from owl_data.corpus import schema as schemas
from owl_data.corpus.read import CorpusChangedError, CorpusReader, DamagedShardError
from owl_data.errors import FieldError
from owl_data.fs import OutputKind, check_out, json_marker, staged
from owl_data.mix.sampler import MixSampler
from owl_data.mix.schedule import parse_weight
from owl_data.mix.spec import MixSpec

__all__ = [
    "MIX_PARQUET",
    "MIX_JSON",
    "MIX_FORMAT",
    "DEFAULT_TASKS",
    "CorpusChangedError",
    "DamagedShardError",
    "MixSizeError",
    "MIX_OUT",
    "MixConfig",
    "MixReport",
    "parse_ratio",
    "parse_within",
    "write_mix",
    "read_mix",
    "check_corpus",
    "open_corpus",
]

MIX_PARQUET = "mix.parquet"
MIX_JSON = "mix.json"
MIX_FORMAT = "owl-mix/1"
DEFAULT_TASKS = schemas.TASK_ORDER  # general VQA : caption : grounding : point VQA
MIX_SCHEMA = pa.schema([
    pa.field("position", pa.int64(), nullable=False),
    pa.field("task", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("id", pa.string(), nullable=False),
    pa.field("epoch", pa.int64(), nullable=False),
    pa.field("file", pa.string(), nullable=False),
    pa.field("row", pa.int64(), nullable=False),
])


MIX_OUT = OutputKind(what="an Owl-VL mix", marker=MIX_JSON,
                     recognise=json_marker(lambda d: d.get("format") == MIX_FORMAT),
                     owned=lambda name: name in (MIX_JSON, MIX_PARQUET), example="mix")
SIZE_MARGIN = 1.25  # the size estimate is scaled by this before it is compared with the free space


class MixSizeError(FieldError):
    """A mix whose estimated size exceeds the free disk space (nothing was written); ``field``
    is the length setting to lower."""


def parse_ratio(text: str) -> tuple[Fraction, ...]:
    """``"5:1:2:2"`` or ``"0.5:0.1:0.2:0.2"`` -> exact weights.

    Raises:
        FieldError: of ``ratio``: an empty, non-numeric or non-positive weight.
    """
    parts = text.split(":")
    return tuple(parse_weight(p, f"ratio {text!r}: weight", "ratio") for p in parts)


def parse_within(items: Sequence[str]) -> dict[str, dict[str, Fraction]]:
    """``["vqa=vqav2:3,gqa:1"]`` -> ``{"vqa": {"vqav2": 3, "gqa": 1}}``.

    Raises:
        FieldError: of ``within``: not ``TASK=SOURCE:W,SOURCE:W``, a repeated task or source,
            a bad weight.
    """
    out: dict[str, dict[str, Fraction]] = {}
    for item in items:
        task, sep, rest = item.partition("=")
        if not sep or not task.strip() or not rest.strip():
            raise FieldError("within", f"within {item!r}: expected TASK=SOURCE:WEIGHT,SOURCE:WEIGHT, e.g. vqa=vqav2:3,gqa:1")
        task = task.strip()
        if task in out:
            raise FieldError("within", f"within names task {task!r} twice")
        srcs: dict[str, Fraction] = {}
        for part in rest.split(","):
            src, sep, w = part.strip().rpartition(":")
            if not sep or not src:
                raise FieldError("within", f"within {item!r}: {part!r} is not SOURCE:WEIGHT")
            if src in srcs:
                raise FieldError("within", f"within {item!r}: source {src!r} appears twice")
            srcs[src] = parse_weight(w, f"within {task}: weight of {src!r}", "within")
        out[task] = srcs
    return out


@dataclass(frozen=True)
class MixConfig:
    """Options of ``owl-data mix``; validated at construction (FieldError names the field).

    Length: ``num_samples`` picks, or just enough for every leaf to have all its rows picked
    ``epochs`` times (``repeat`` only); neither: 1 epoch under ``repeat``, the natural end
    (first exhausted leaf) under ``stop``.
    """

    ratio: tuple[Fraction, ...]
    tasks: tuple[str, ...] = DEFAULT_TASKS
    within: Mapping[str, Mapping[str, Fraction]] = field(default_factory=dict)
    num_samples: int | None = None
    epochs: int | None = None
    on_exhausted: str = "repeat"
    seed: int = 0
    split: str = "train"

    def __post_init__(self) -> None:
        if not self.tasks:
            raise FieldError("tasks", "tasks: no task given; name one or more of " + ", ".join(schemas.TASK_TABLES))
        if len(set(self.tasks)) != len(self.tasks):
            raise FieldError("tasks", f"tasks {','.join(self.tasks)}: give each task once")
        unknown = [t for t in self.tasks if t not in schemas.TASK_TABLES]
        if unknown:
            raise FieldError("tasks", f"tasks: unknown task(s) {', '.join(unknown)}; tasks: {', '.join(schemas.TASK_TABLES)}")
        if len(self.ratio) != len(self.tasks):
            raise FieldError("ratio", f"ratio has {len(self.ratio)} weight(s) for {len(self.tasks)} task(s) "
                             f"({','.join(self.tasks)}); give one per task or set `tasks`")
        bad = [t for t in self.within if t not in self.tasks]
        if bad:
            raise FieldError("within", f"within names task(s) {', '.join(bad)} not in `tasks` {','.join(self.tasks)}")
        if self.num_samples is not None and self.epochs is not None:
            raise FieldError("num_samples", "num_samples and `epochs` both set; give one")
        if self.num_samples is not None and self.num_samples < 1:
            raise FieldError("num_samples", f"num_samples {self.num_samples} must be >= 1")
        if self.epochs is not None and self.epochs < 1:
            raise FieldError("epochs", f"epochs {self.epochs} must be >= 1")
        if self.on_exhausted not in ("repeat", "stop"):
            raise FieldError("on_exhausted", f"on_exhausted {self.on_exhausted!r}: use repeat or stop")
        if self.epochs is not None and self.on_exhausted == "stop":
            raise FieldError("epochs", "epochs needs `on_exhausted` repeat (under stop the mix ends at the first exhausted task)")
        if self.seed < 0:
            raise FieldError("seed", f"seed {self.seed} must be >= 0")


@dataclass
class MixReport:
    """What :func:`write_mix` wrote."""

    out: Path
    meta: dict[str, Any]
    length: int


def _task_rows(reader: CorpusReader, task: str, split: str) -> pa.Table:
    """The split's rows of a task table: id, source, file (relative), row (index in file)."""
    parts = []
    for rel in reader.files(f"{task}/{split}"):
        t = reader.read_table(rel, columns=["id", "source"])
        parts.append(t.append_column("file", pa.array([rel] * t.num_rows, pa.string()))
                     .append_column("row", pa.array(np.arange(t.num_rows, dtype=np.int64))))
    if not parts:
        return pa.table({"id": pa.array([], pa.string()), "source": pa.array([], pa.string()),
                         "file": pa.array([], pa.string()), "row": pa.array([], pa.int64())})
    return pa.concat_tables(parts)


def open_corpus(corpus: Path, expected: str | None = None) -> CorpusReader:
    """The corpus opened for reading (:class:`CorpusReader`; its shards are checked as they are
    opened, or, for a manifest without shard hashes, the whole fingerprint now); its manifest's
    fingerprint must equal ``expected`` (a mix's) when given.

    Raises:
        FileNotFoundError: not a corpus.
        CorpusChangedError: the content or the manifest changed (since the mix was made).
        DamagedShardError: a manifest whose shard hashes do not add up to its fingerprint.
    """
    reader = CorpusReader(corpus, legacy_check=True)
    fp = reader.fingerprint
    if expected is not None and fp != expected:
        raise CorpusChangedError(f"{corpus}: fingerprint {str(fp)[:12]}… differs from the mix's {expected[:12]}…; "
                                 "the corpus changed since the mix was made: run owl-data mix again")
    return reader


def check_corpus(corpus: Path, expected: str | None = None) -> str:
    """The corpus's fingerprint, checked as :func:`open_corpus` does; same errors."""
    return open_corpus(corpus, expected).fingerprint


def _free_bytes(path: Path) -> int:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def _check_space(out: Path, length: int, sample: pa.Table, cfg: MixConfig) -> None:
    """Refuse a mix whose size, estimated from ``sample`` (its first picks), exceeds the free space.

    Raises:
        MixSizeError: naming the estimate, the free space and the setting to change (its
            ``field``: ``num_samples``, or ``epochs`` when that set the length).
    """
    sink = pa.BufferOutputStream()
    pq.write_table(sample, sink, compression="zstd")
    per_pick = sink.getvalue().size / max(1, sample.num_rows)
    need = int(per_pick * length * SIZE_MARGIN)
    free = _free_bytes(out.parent)
    if need > free:
        field_ = "epochs" if cfg.num_samples is None and cfg.epochs is not None else "num_samples"
        setting = f"`{field_}`" + (" (the default length is one epoch)"
                                   if cfg.num_samples is None and cfg.epochs is None else "")
        raise MixSizeError(field_, f"a mix of {length:,} picks needs about {need / 2**30:,.1f} GiB "
                           f"({per_pick:.1f} bytes per pick), but {out.parent} has {free / 2**30:,.1f} GiB free; "
                           f"lower {setting} or write the mix elsewhere")


def _within_rows(task: str, rows: pa.Table, within: Mapping[str, Fraction], split: str
                 ) -> tuple[dict[str, int], list[pa.Table]]:
    """A nested task's rows per source, in ``within`` order: (source -> rows, one table each).

    Raises:
        FieldError: of ``within``: a source with no rows, or a source of the task left out.
    """
    have = sorted(set(rows.column("source").to_pylist()))
    want = list(within)
    missing = [s for s in want if s not in have]
    if missing:
        raise FieldError("within", f"within {task}: source(s) {', '.join(missing)} have no {task} rows in split "
                         f"{split!r}; its sources: {', '.join(have)}")
    extra = [s for s in have if s not in want]
    if extra:
        raise FieldError("within", f"within {task}: the task also has rows from {', '.join(extra)}; "
                         "give every source a weight")
    tables = [rows.filter(pc.equal(rows.column("source"), s)) for s in want]
    return {s: t.num_rows for s, t in zip(want, tables)}, tables


def _leaf_rows(reader: CorpusReader, cfg: MixConfig) -> tuple[dict[str, Any], list[pa.Table]]:
    """Every leaf's rows (tasks in order, a nested task's sources in ``within`` order):
    (task -> rows, or task -> source -> rows when nested; one table per leaf, :func:`_task_rows`).

    Raises:
        FieldError: of ``tasks`` (a task without rows in the split) or ``within``.
    """
    tables: list[pa.Table] = []
    sizes: dict[str, Any] = {}
    for task in cfg.tasks:
        rows = _task_rows(reader, task, cfg.split)
        if rows.num_rows == 0:
            raise FieldError("tasks", f"task {task!r} has no rows in split {cfg.split!r} of {reader.root}; "
                             "build the corpus with a source for it or leave it out of `tasks`")
        if task in cfg.within:
            sizes[task], leaf_tables = _within_rows(task, rows, cfg.within[task], cfg.split)
            tables += leaf_tables
        else:
            sizes[task] = rows.num_rows
            tables.append(rows)
    return sizes, tables


def _mix_length(spec: MixSpec, cfg: MixConfig) -> int:
    """The picks of the mix (:class:`MixConfig`: ``num_samples``, ``epochs`` or the default)."""
    sampler = MixSampler(spec)
    if cfg.num_samples is not None:
        return cfg.num_samples if cfg.on_exhausted == "repeat" else min(cfg.num_samples, sampler.stop_length())
    if cfg.on_exhausted == "stop":
        return sampler.stop_length()
    return sampler.epochs_length(cfg.epochs or 1)


class _PickRows:
    """The rows of ``mix.parquet`` for a range of picks: each pick joined with its leaf's row.

    ``tables`` are the leaves' rows in spec leaf order (:func:`_leaf_rows`).
    """

    def __init__(self, sampler: MixSampler, tables: list[pa.Table]) -> None:
        self.sampler = sampler
        self.rows = pa.concat_tables(tables)
        self.offsets = np.cumsum([0] + [t.num_rows for t in tables[:-1]]).astype(np.int64)
        self.task_names = np.array([t.name for t in sampler.spec.tasks], dtype=object)

    def table(self, start: int, stop: int) -> pa.Table:
        """Picks ``start <= g < stop`` as a :data:`MIX_SCHEMA` table."""
        p = self.sampler.picks(start, stop)
        rows = self.rows.take(pa.array(self.offsets[p.leaf] + p.row))
        return pa.table({
            "position": pa.array(p.position), "task": pa.array(self.task_names[p.task], pa.string()),
            "source": rows.column("source"), "id": rows.column("id"), "epoch": pa.array(p.epoch),
            "file": rows.column("file"), "row": rows.column("row")}, schema=MIX_SCHEMA)


def _mix_meta(corpus: Path, fp: str, cfg: MixConfig, spec: MixSpec, length: int) -> dict[str, Any]:
    """The ``mix.json`` document (module docstring)."""
    return {
        "format": MIX_FORMAT,
        "corpus": str(corpus),
        "fingerprint": fp,
        "split": cfg.split,
        "tasks": list(cfg.tasks),
        "ratio": [str(r) for r in cfg.ratio],
        "within": {t: {s: str(w) for s, w in srcs.items()} for t, srcs in cfg.within.items()},
        "num_samples": cfg.num_samples,
        "epochs": cfg.epochs,
        "on_exhausted": cfg.on_exhausted,
        "seed": cfg.seed,
        "length": length,
        "spec": spec.to_dict(),
    }


def write_mix(corpus: Path, out: Path, cfg: MixConfig, chunk: int = 1 << 16) -> MixReport:
    """Draw a mix over ``corpus`` and write ``out/mix.parquet`` and ``out/mix.json``.

    Raises:
        FileNotFoundError: not a corpus.
        CorpusChangedError: the corpus's content differs from its manifest's fingerprint, or
            it was rebuilt while being read.
        DamagedShardError: a shard that differs from the manifest's hash (named).
        FieldError: a task (``tasks``) or within source (``within``) with no rows in the
            split (named), a within source list that does not match the task's sources.
        OutputError: an ``out`` that is not new, empty or an earlier mix holding only
            ``mix.json`` and ``mix.parquet``; ``.``; the current directory; inside the corpus
            or holding it (:func:`owl_data.fs.check_out`).
        MixSizeError: the mix's estimated size exceeds the free space where it is written.

    The mix is written in a staging folder beside ``out`` and swapped into place when
    complete; an interrupted or failed run leaves ``out`` as it was and no partial file.
    """
    out = check_out(out, kind=MIX_OUT, reads={"the corpus": corpus})
    corpus, out = Path(corpus).resolve(), Path(out).absolute()
    reader = open_corpus(corpus)
    fp = reader.fingerprint
    sizes, tables = _leaf_rows(reader, cfg)
    spec = MixSpec.create(sizes, list(cfg.ratio), within=cfg.within, seed=cfg.seed, on_exhausted=cfg.on_exhausted)
    length = _mix_length(spec, cfg)
    picks = _PickRows(MixSampler(spec, length=length), tables)
    _check_space(out, length, picks.table(0, min(length, chunk)), cfg)
    meta = _mix_meta(corpus, fp, cfg, spec, length)
    with staged(out) as staging:
        with pq.ParquetWriter(staging / MIX_PARQUET, MIX_SCHEMA, compression="zstd") as w:
            for s in range(0, length, chunk):
                w.write_table(picks.table(s, min(s + chunk, length)))
        (staging / MIX_JSON).write_text(json.dumps(meta, indent=2) + "\n")
    return MixReport(out=out, meta=meta, length=length)


def read_mix(mix: Path) -> dict[str, Any]:
    """Load ``mix.json``.

    Raises:
        FileNotFoundError: not a mix folder.
        ValueError: ``mix.json`` not a JSON object, of another format, or without a ``spec``.
    """
    mix = Path(mix)
    path = mix / MIX_JSON
    if not path.is_file() or not (mix / MIX_PARQUET).is_file():
        raise FileNotFoundError(f"{mix} is not an Owl-VL mix: {MIX_JSON} or {MIX_PARQUET} is missing")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path}: not readable JSON ({why}); write the mix again with owl-data mix") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path} holds a JSON {type(meta).__name__}, not a mix description (an object)")
    if meta.get("format") != MIX_FORMAT:
        raise ValueError(f"{mix}: mix format {meta.get('format')!r}, this owl-data reads {MIX_FORMAT}")
    spec = meta.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("tasks"), list):
        raise ValueError(f"{path}: 'spec' is missing or malformed; write the mix again with owl-data mix")
    return meta
