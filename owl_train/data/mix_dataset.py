"""torch datasets over CORPUS + MIX: decoded rows in mix order, sharded and resumable.

Each sample is a dict::

    position       int, the pick's global position in the mix
    id, task, source, image_id
    image          PIL.Image (decoded from the corpus images table's bytes)
    conversations  [{"role", "content"}]
    point          (x, y) in [0, 1] (point_vqa), else None
    bbox           [x0, y0, x1, y1] in [0, 1] (point_vqa target.bbox, grounding bbox), else None

Rows are read by (shard, row) straight from ``mix.parquet``; task shards are loaded once per
process (text only). Images are found through an ``image_id -> (shard, row group, offset)``
index built from the ``image_id`` column alone; the ``bytes`` column is read one row group
at a time into a per-process LRU bounded by ``image_cache_bytes``, so the images table is
never loaded whole. The corpus's manifest fingerprint is checked against the mix's when a
dataset is made (``verify=False`` skips it; a manifest without shard hashes has its whole
fingerprint recomputed then), and every shard against the manifest's hash as it is opened
(:mod:`owl_data.corpus.read`: a damaged shard is a ``DamagedShardError`` naming it, a corpus
rebuilt meanwhile a ``CorpusChangedError`` "changed while reading").

:class:`MixIterableDataset` shards like :class:`owl_data.mix.sampler.MixSampler`: rank ``r`` of
``world`` takes offsets ``q = g - consumed`` with ``q % world == r``; DataLoader worker ``k``
of ``K`` takes rank-local index ``i = q // world`` when ``(i // block) % K == k``. With a
DataLoader of ``batch_size=block`` (``batch_size=None`` for block 1) the rank's batches come
in global order. ``state_dict(samples_seen)`` / ``load_state_dict`` resume with any
``world`` and number of workers.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from owl_data.mix.sampler import shard_positions
from owl_data.mix.spec import MixSpec
from owl_data.corpus.read import CorpusReader
from owl_data.mix.io import MIX_PARQUET, open_corpus, read_mix

__all__ = ["MixRows", "MixDataset", "MixIterableDataset"]


class MixRows:
    """Random access to a mix's decoded rows (one per process; loads lazily).

    Raises:
        FileNotFoundError / ValueError: not a corpus or not a mix (:func:`owl_data.mix.io.read_mix`).
        CorpusChangedError: ``verify`` and the corpus's fingerprint differs from the mix's.
        DamagedShardError / CorpusChangedError: from :meth:`__getitem__`, a shard that differs
            from the manifest's hash, or a corpus rebuilt while being read.
    """

    def __init__(self, corpus: Path, mix: Path, *, verify: bool = True, image_cache_bytes: int = 256 << 20) -> None:
        self.corpus, self.mix = Path(corpus), Path(mix)
        self.meta = read_mix(self.mix)
        self.reader = open_corpus(self.corpus, self.meta["fingerprint"]) if verify else CorpusReader(self.corpus)
        self.spec = MixSpec.from_dict(self.meta["spec"])
        self.length = int(self.meta["length"])
        self.image_cache_bytes = image_cache_bytes
        self._picks: pa.Table | None = None
        self._shards: dict[str, pa.Table] = {}
        self._img_index: dict[str, tuple[int, int, int]] | None = None
        self._img_files: list[pq.ParquetFile] = []  # the images shards, checked and held open
        self._img_cache: "OrderedDict[tuple[int, int], pa.Array]" = OrderedDict()
        self._img_cache_size = 0

    def __getstate__(self) -> dict[str, Any]:  # workers rebuild their caches
        d = dict(self.__dict__)
        d.update(_picks=None, _shards={}, _img_index=None, _img_files=[], _img_cache=OrderedDict(), _img_cache_size=0)
        return d

    def _load_picks(self) -> pa.Table:
        if self._picks is None:
            self._picks = pq.read_table(self.mix / MIX_PARQUET, columns=["position", "task", "file", "row"])
        return self._picks

    def _image_bytes(self, image_id: str) -> bytes:
        if self._img_index is None:
            self._img_files = [self.reader.open(rel, in_memory=False) for rel in self.reader.files("images")]
            self._img_index = {}
            for fi, pf in enumerate(self._img_files):
                for rg in range(pf.num_row_groups):
                    ids = pf.read_row_group(rg, columns=["image_id"]).column(0).to_pylist()
                    self._img_index.update((i, (fi, rg, off)) for off, i in enumerate(ids))
        if image_id not in self._img_index:
            raise KeyError(f"image {image_id} is not in {self.corpus}/images")
        fi, rg, off = self._img_index[image_id]
        key = (fi, rg)
        if key not in self._img_cache:
            col = self._img_files[fi].read_row_group(rg, columns=["bytes"]).column(0).combine_chunks()
            self._img_cache[key] = col
            self._img_cache_size += col.nbytes
            while self._img_cache_size > self.image_cache_bytes and len(self._img_cache) > 1:
                _, old = self._img_cache.popitem(last=False)
                self._img_cache_size -= old.nbytes
        else:
            self._img_cache.move_to_end(key)
        return self._img_cache[key][off].as_py()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, position: int) -> dict[str, Any]:
        if not 0 <= position < self.length:
            raise IndexError(f"position {position} outside the mix (length {self.length})")
        picks = self._load_picks()
        rel = picks.column("file")[position].as_py()
        row = picks.column("row")[position].as_py()
        if rel not in self._shards:
            self._shards[rel] = self.reader.read_table(rel)
        r = self._shards[rel].slice(row, 1).to_pylist()[0]
        task = picks.column("task")[position].as_py()
        point = bbox = None
        if task == "point_vqa":
            point = (r["point"]["x"], r["point"]["y"])
            bbox = r["target"]["bbox"]
        elif task == "grounding":
            bbox = r["bbox"]
        img = Image.open(io.BytesIO(self._image_bytes(r["image_id"])))
        img.load()
        return {"position": position, "id": r["id"], "task": task, "source": r["source"],
                "image_id": r["image_id"], "image": img, "conversations": r["conversations"],
                "point": point, "bbox": bbox}


class MixDataset(Dataset):
    """Map-style: ``ds[i]`` is the decoded row at mix position ``i`` (use a DistributedSampler
    with ``shuffle=False`` to shard; the mix is already in training order)."""

    def __init__(self, corpus: Path, mix: Path, *, verify: bool = True) -> None:
        self.rows = MixRows(corpus, mix, verify=verify)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


class MixIterableDataset(IterableDataset):
    """Iterable, sharded by rank/world and DataLoader worker, resumable from ``consumed``.

    ``rank``/``world`` default to torch.distributed's when initialised, else 0/1.
    """

    def __init__(self, corpus: Path, mix: Path, *, rank: int | None = None, world: int | None = None,
                 block: int = 1, verify: bool = True) -> None:
        super().__init__()
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.rank = rank if rank is not None else (torch.distributed.get_rank() if dist else 0)
        self.world = world if world is not None else (torch.distributed.get_world_size() if dist else 1)
        self.block = block
        self.consumed = 0
        self._seen = 0
        self.rows = MixRows(corpus, mix, verify=verify)
        shard_positions(0, 0, rank=self.rank, world=self.world, block=block)  # validates

    def positions(self, worker: int = 0, workers: int = 1) -> np.ndarray:
        """The global positions this rank/worker will yield from ``consumed``."""
        return shard_positions(self.consumed, self.rows.length, consumed=self.consumed, rank=self.rank,
                               world=self.world, worker=worker, workers=workers, block=self.block)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for g in self.positions(worker, workers).tolist():
            if info is None:
                self._seen = (g - self.consumed) // self.world + 1
            yield self.rows[g]

    def __len__(self) -> int:
        return int(self.positions().size)

    def state_dict(self, samples_seen: int | None = None) -> dict[str, Any]:
        """``{"consumed", "spec", "length", "fingerprint"}``; ``samples_seen`` is how many samples
        this rank took since the last load (all ranks in lockstep); default: what this object
        yielded itself (only known without DataLoader workers)."""
        n = self._seen if samples_seen is None else samples_seen
        return {"consumed": min(self.consumed + n * self.world, self.rows.length),
                "spec": self.rows.spec.to_dict(), "length": self.rows.length,
                "fingerprint": self.rows.meta["fingerprint"]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume at ``state["consumed"]``.

        Raises:
            ValueError: the state belongs to another mix.
        """
        if (MixSpec.from_dict(state["spec"]) != self.rows.spec or state.get("length") != self.rows.length
                or state.get("fingerprint", self.rows.meta["fingerprint"]) != self.rows.meta["fingerprint"]):
            raise ValueError("state_dict belongs to another mix (spec, length or corpus differ)")
        self.consumed = int(state["consumed"])
        self._seen = 0
