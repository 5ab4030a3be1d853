"""Where the training and evaluation rows come from.

- :class:`MixStream` (stage 1): a mix in order through :class:`owl_train.data.mix_dataset.MixIterableDataset`,
  sharded by rank; resumes from ``state_dict(samples_seen)``.
- :class:`FilteredMix` (stage 2): the positions of a mix whose rows pass a filter (by default the
  point-VQA descriptions without a question), decided from the corpus's text columns before any
  image is decoded; sharded by rank like the mix (kept position ``i`` goes to rank ``i % world``)
  and resumable from the count of kept positions consumed.
- :func:`description_mix` (stage 2 without a mix): a point_vqa-only mix of one split, written
  with :func:`owl_data.mix.io.write_mix` and reused while its stamp matches.
- :func:`corpus_rows`: a split's rows of one task straight from the corpus (evaluation, held-out
  losses), in the same dict form as the mix's rows plus the task's own columns.

Rows are dicts: ``id, task, source, image_id, image (PIL), conversations, point (x, y) | None,
bbox [x0, y0, x1, y1] | None`` (normalised to [0, 1], stored upright frame).

Every corpus shard is opened through :class:`owl_data.corpus.read.CorpusReader`, checked against
the manifest's hash as it is opened (``DamagedShardError`` naming a damaged shard,
``CorpusChangedError`` for a corpus rebuilt while being read).
"""

from __future__ import annotations

import io
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from owl_train.data.mix_dataset import MixIterableDataset, MixRows
from owl_data.corpus.read import CorpusChangedError, CorpusReader, DamagedShardError
from owl_data.mix.io import MIX_PARQUET, MixConfig, write_mix

__all__ = ["MixStream", "FilteredMix", "corpus_rows", "corpus_images", "is_stage2_row", "description_mask",
           "description_mix", "dist_rank_world"]

NO_QUESTION = "<image><point>"


def dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _identity(x: Any) -> Any:
    return x


def _worker_errors(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``rows`` from DataLoader workers; a corpus error a worker raised (which the DataLoader
    re-raises with the worker's traceback as its message) comes back as its own one line."""
    try:
        yield from rows
    except (DamagedShardError, CorpusChangedError) as exc:
        lines = str(exc).strip().splitlines()
        if not (lines and lines[0].startswith("Caught ")):
            raise
        raise type(exc)(lines[-1].split(": ", 1)[-1]) from None


def is_stage2_row(conversations: list[Mapping[str, str]], kind: str | None = "description") -> bool:
    """A description row whose first user turn is only ``<image><point>`` (no question)."""
    user = next((t for t in conversations if t["role"] == "user"), None)
    return kind == "description" and user is not None and "".join(user["content"].split()) == NO_QUESTION


def description_mask(table: pa.Table) -> np.ndarray:
    """Per row of a point_vqa table (columns kind, conversations): True for stage-2 rows."""
    kinds = table.column("kind").to_pylist()
    convs = table.column("conversations").to_pylist()
    return np.array([is_stage2_row(c, k) for k, c in zip(kinds, convs)], dtype=bool)


class MixStream:
    """A mix's rows in order for this rank (``num_workers`` DataLoader workers decode them)."""

    def __init__(self, corpus: Path, mix: Path, *, num_workers: int = 0) -> None:
        rank, world = dist_rank_world()
        self.ds = MixIterableDataset(Path(corpus), Path(mix), rank=rank, world=world)
        self.num_workers = num_workers

    def __len__(self) -> int:
        return len(self.ds)  # rows left for this rank from the current state

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.num_workers:
            return iter(self.ds)
        return _worker_errors(iter(DataLoader(self.ds, batch_size=None, num_workers=self.num_workers,
                                              collate_fn=_identity)))

    def state_dict(self, pulled: int) -> dict[str, Any]:
        return self.ds.state_dict(samples_seen=pulled)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.ds.load_state_dict(state)


class _Picker(Dataset):
    def __init__(self, rows: MixRows, positions: np.ndarray) -> None:
        self.rows, self.positions = rows, positions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[int(self.positions[i])]


class FilteredMix:
    """The rows of a mix that pass ``keep`` (a function of a point_vqa table -> bool mask)."""

    def __init__(self, corpus: Path, mix: Path, *, keep: Callable[[pa.Table], np.ndarray] = description_mask,
                 num_workers: int = 0, name: str = "description_no_question") -> None:
        self.rank, self.world = dist_rank_world()
        self.rows = MixRows(Path(corpus), Path(mix))
        self.name, self.num_workers = name, num_workers
        picks = pq.read_table(Path(mix) / MIX_PARQUET, columns=["position", "task", "file", "row"])
        files = picks.column("file").to_pylist()
        rows = np.asarray(picks.column("row").to_numpy(), dtype=np.int64)
        tasks = picks.column("task").to_pylist()
        ok = np.zeros(len(files), dtype=bool)
        masks: dict[str, np.ndarray] = {}
        for f in sorted(set(f for f, t in zip(files, tasks) if t == "point_vqa")):
            masks[f] = keep(self.rows.reader.read_table(f, columns=["kind", "conversations"]))
        for i, (f, t) in enumerate(zip(files, tasks)):
            ok[i] = t == "point_vqa" and bool(masks[f][rows[i]])
        self.positions = np.asarray(picks.column("position").to_numpy(), dtype=np.int64)[ok]
        if not len(self.positions):
            raise ValueError(f"mix {mix} has no {name} rows (point_vqa descriptions with user turn "
                             f"{NO_QUESTION!r}); build the corpus with no-question descriptions")
        self.consumed = 0

    def __len__(self) -> int:
        return len(range(self.consumed + self.rank, len(self.positions), self.world))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        idx = list(range(self.consumed + self.rank, len(self.positions), self.world))
        picker = _Picker(self.rows, self.positions)
        if not self.num_workers:
            return (picker[i] for i in idx)
        return _worker_errors(iter(DataLoader(picker, sampler=idx, batch_size=None, num_workers=self.num_workers,
                                              collate_fn=_identity)))

    def state_dict(self, pulled: int) -> dict[str, Any]:
        return {"consumed": min(self.consumed + pulled * self.world, len(self.positions)),
                "kept": len(self.positions), "filter": self.name, "fingerprint": self.rows.meta["fingerprint"]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if (state.get("kept") != len(self.positions) or state.get("filter") != self.name
                or state.get("fingerprint") != self.rows.meta["fingerprint"]):
            raise ValueError("sampler state belongs to another mix or filter (kept rows, filter or corpus differ)")
        self.consumed = int(state["consumed"])


def description_mix(corpus: Path, out: Path, split: str, rows_needed: int,
                    note: Callable[[str], None] = lambda s: None) -> Path:
    """A mix of ``split``'s point_vqa rows in ``out``, with enough epochs that its no-question
    descriptions (:func:`description_mask`) give ``rows_needed`` rows (one epoch when 0).

    ``out/owl-stage2.json`` stamps the epochs, split and row count; a matching stamp reuses the
    mix already there.

    Raises:
        ValueError: the split has no no-question description rows.
        DamagedShardError / CorpusChangedError: a shard that differs from the manifest's hash.
    """
    reader = CorpusReader(corpus)
    files = reader.files(f"point_vqa/{split}")
    n_rows = sum(reader.rows(f) for f in files)
    n_keep = sum(int(description_mask(reader.read_table(f, columns=["kind", "conversations"])).sum()) for f in files)
    if not n_keep:
        raise ValueError(f"{corpus} has no point_vqa description rows without a question in split {split!r}; "
                         "stage 2 trains on those")
    epochs = max(1, math.ceil(rows_needed / n_keep)) if rows_needed else 1
    want = {"epochs": epochs, "split": split, "rows": n_rows}
    stamp = out / "owl-stage2.json"
    if not (stamp.is_file() and json.loads(stamp.read_text()) == want):
        write_mix(corpus, out, MixConfig(ratio=(Fraction(1),), tasks=("point_vqa",), epochs=epochs, split=split))
        stamp.write_text(json.dumps(want) + "\n")
        note(f"stage-2 mix: {epochs} epoch(s) of point_vqa/{split} ({n_keep} no-question descriptions) in {out}")
    return out


def _images(reader: CorpusReader, ids: set[str]) -> dict[str, bytes]:
    t = reader.read_images(ids)
    return dict(zip(t.column("image_id").to_pylist(), t.column("bytes").to_pylist()))


def corpus_images(corpus: str | Path, ids: Collection[str]) -> dict[str, Image.Image]:
    """The decoded images of ``ids`` from the corpus's images table (ids it lacks are absent).

    Raises:
        FileNotFoundError: not a corpus. DamagedShardError / CorpusChangedError: an images
            shard that differs from the manifest's hash.
    """
    out: dict[str, Image.Image] = {}
    for iid, blob in _images(CorpusReader(corpus), set(ids)).items():
        img = Image.open(io.BytesIO(blob))
        img.load()
        out[iid] = img
    return out


def corpus_rows(corpus: str | Path, task: str, split: str = "val", *, limit: int | None = None,
                where: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
    """Rows of ``task`` in ``split`` (shard then row order), the first ``limit`` that pass ``where``.

    Raises:
        FileNotFoundError: ``corpus`` is not a corpus.
        ValueError: ``split`` is not a split name (a path such as ``../images``).
        DamagedShardError / CorpusChangedError: a shard that differs from the manifest's hash.
    """
    from owl_data.corpus.writer import check_split

    corpus = Path(corpus)
    if not (corpus / "manifest.json").is_file():
        raise FileNotFoundError(f"{corpus} is not an Owl-VL corpus (no manifest.json)")
    reader = CorpusReader(corpus)
    rows: list[dict[str, Any]] = []
    for f in reader.files(f"{task}/{check_split(split)}"):
        for r in reader.read_table(f).to_pylist():
            if where is not None and not where(r):
                continue
            rows.append(r)
            if limit is not None and len(rows) >= limit:
                break
        if limit is not None and len(rows) >= limit:
            break
    blobs = _images(reader, {r["image_id"] for r in rows})
    out = []
    for r in rows:
        img = Image.open(io.BytesIO(blobs[r["image_id"]]))
        img.load()
        point = (r["point"]["x"], r["point"]["y"]) if task == "point_vqa" else None
        bbox = r["target"]["bbox"] if task == "point_vqa" else r.get("bbox")
        out.append({**r, "task": task, "image": img, "point": point, "bbox": bbox})
    return out
