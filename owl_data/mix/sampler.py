"""The mix sampler: seeded rows per leaf, sharding across ranks and workers, exact resumption.

Rows: the ``j``-th pick of a leaf (a task, or a source inside a nested task) is row
``permutation(seed, leaf, e)[j % size]`` with ``e = j // size`` -- a fresh permutation per
epoch from ``numpy.random.default_rng(SeedSequence([seed, *sha256(leaf name), e]))``; no
global RNG. Under ``stop`` the stream ends at the first pick that would start a leaf's
second epoch. Which leaf serves pick ``g`` is the schedule's (:mod:`owl_data.mix.schedule`).

Sharding: with offset ``q = g - consumed``, rank ``r`` of ``W`` takes ``q % W == r``; within a
rank, the rank-local index ``i = q // W`` goes to DataLoader worker ``(i // block) % K``.
The parts are disjoint, their union in global order is the single-process stream, and the
state is only ``consumed`` (plus the spec), so a resume may use any ``W`` and ``K``.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, NamedTuple

import numpy as np

from owl_data.mix.schedule import Schedule, integer_weights
from owl_data.mix.spec import MixSpec

__all__ = ["Pick", "Picks", "MixSampler", "shard_positions"]


class Pick(NamedTuple):
    """One pick: global ``position``; ``row`` indexes the leaf's rows (task or task/source)."""

    position: int
    task: str
    source: str | None
    row: int


@dataclass
class Picks:
    """A block of picks as arrays (int64): position, task index, leaf index, row, leaf epoch."""

    position: np.ndarray
    task: np.ndarray
    leaf: np.ndarray
    row: np.ndarray
    epoch: np.ndarray


def shard_positions(start: int, stop: int, *, consumed: int = 0, rank: int = 0, world: int = 1,
                    worker: int = 0, workers: int = 1, block: int = 1) -> np.ndarray:
    """The global positions in ``[start, stop)`` that rank/worker takes (module docstring)."""
    if not (0 <= rank < world and 0 <= worker < workers and block >= 1):
        raise ValueError(f"bad shard: rank {rank} of {world}, worker {worker} of {workers}, block {block}")
    g = np.arange(max(start, consumed), stop, dtype=np.int64)
    q = g - consumed
    keep = (q % world == rank) & ((q // world) // block % workers == worker)
    return g[keep]


@dataclass
class MixSampler:
    """Yields :class:`Pick` for a spec; one rank/worker's part when sharded.

    ``length`` None is unbounded (``repeat``); under ``stop`` the stream also ends at the
    first pick that would exhaust a leaf. ``consumed`` is the global resume point.
    """

    spec: MixSpec
    length: int | None = None
    rank: int = 0
    world: int = 1
    worker: int = 0
    workers: int = 1
    block: int = 1
    consumed: int = 0
    cache_epochs: int = 2
    _top: Schedule = field(init=False, repr=False)
    _inner: dict[int, Schedule] = field(init=False, repr=False)
    _perms: "OrderedDict[tuple[int, int], np.ndarray]" = field(init=False, repr=False)
    _last_local: int = field(init=False, default=-1, repr=False)

    def __post_init__(self) -> None:
        if self.length is not None and self.length < 0:
            raise ValueError(f"length {self.length} must be >= 0")
        shard_positions(0, 0, rank=self.rank, world=self.world, worker=self.worker,
                        workers=self.workers, block=self.block)  # validates the shard
        self._top = Schedule(integer_weights([t.weight for t in self.spec.tasks]))
        self._inner = {k: Schedule(integer_weights([w for _, w, _ in t.sources]))
                       for k, t in enumerate(self.spec.tasks) if t.sources}
        self._leaf_base, self._leaf_names, self._sizes, self._leaf_task = [], [], [], []
        for k, t in enumerate(self.spec.tasks):
            self._leaf_base.append(len(self._sizes))
            for s, _, n in (t.sources or ((None, None, t.size),)):
                self._leaf_names.append(t.name if s is None else f"{t.name}/{s}")
                self._sizes.append(n)
                self._leaf_task.append(k)
        self._perms = OrderedDict()
        self.end = self._end()

    # -- lengths ---------------------------------------------------------------------------
    def leaf_position(self, leaf: int, j: int) -> int:
        """Global position of the ``j``-th pick (0-based) of ``leaf``."""
        k = self._leaf_task[leaf]
        if k in self._inner:
            j = self._inner[k].position_of(leaf - self._leaf_base[k], j)
        return self._top.position_of(k, j)

    def _position_floor(self, leaf: int, j: int) -> int:
        """A lower bound on :meth:`leaf_position`: every prefix is within one pick of its share,
        so a child of weight ``w`` in ``total`` has its ``j``-th pick at ``>= j * total // w``."""
        k = self._leaf_task[leaf]
        if k in self._inner:
            inner = self._inner[k]
            j = j * inner.total // inner.weights[leaf - self._leaf_base[k]]
        return j * self._top.total // self._top.weights[k]

    def stop_length(self) -> int:
        """Picks before the first one that would start some leaf's second epoch (leaves whose
        lower bound is past the best so far are not simulated)."""
        best = None
        for lb, l in sorted((self._position_floor(l, n), l) for l, n in enumerate(self._sizes)):
            if best is not None and lb >= best:
                break
            p = self.leaf_position(l, self._sizes[l])
            best = p if best is None else min(best, p)
        return best

    def epochs_length(self, epochs: int) -> int:
        """The shortest length in which every leaf has all its rows picked ``epochs`` times."""
        if epochs < 1:
            raise ValueError(f"epochs {epochs} must be >= 1")
        return max(self.leaf_position(l, epochs * n - 1) for l, n in enumerate(self._sizes)) + 1

    def leaf_picks(self, length: int) -> list[int]:
        """Picks of each leaf (spec leaf order) among the first ``length`` positions, exactly
        (the schedules' counts, nothing simulated past what the counts need)."""
        top = self._top.counts_before(length)
        picks: list[int] = []
        for k, t in enumerate(self.spec.tasks):
            if k in self._inner:
                picks += [int(c) for c in self._inner[k].counts_before(int(top[k]))]
            else:
                picks.append(int(top[k]))
        return picks

    def _end(self) -> int | None:
        if self.spec.on_exhausted == "stop":
            s = self.stop_length()
            return s if self.length is None else min(s, self.length)
        return self.length

    # -- rows ------------------------------------------------------------------------------
    def permutation(self, leaf: int, epoch: int) -> np.ndarray:
        """The row order of ``leaf`` in its ``epoch`` (seeded from seed, leaf name, epoch)."""
        key = (leaf, epoch)
        if key in self._perms:
            self._perms.move_to_end(key)
            return self._perms[key]
        h = hashlib.sha256(self._leaf_names[leaf].encode()).digest()
        words = [int.from_bytes(h[i:i + 4], "little") for i in range(0, 16, 4)]
        rng = np.random.default_rng(np.random.SeedSequence([self.spec.seed, *words, epoch]))
        n = self._sizes[leaf]
        perm = rng.permutation(n).astype(np.int32 if n < 2**31 else np.int64)
        self._perms[key] = perm
        while len(self._perms) > self.cache_epochs * len(self._sizes):
            self._perms.popitem(last=False)
        return perm

    def picks(self, start: int, stop: int) -> Picks:
        """Every global pick in ``[start, stop)`` (unsharded), vectorised.

        Raises:
            IndexError: ``stop`` is past the end of a bounded stream.
        """
        if self.end is not None and stop > self.end:
            raise IndexError(f"picks [{start}, {stop}) run past the end of the stream ({self.end})")
        child, idx = self._top.block(start, stop)
        leaf = np.empty_like(child)
        j = np.empty_like(idx)
        for k in np.unique(child).tolist():
            sel = child == k
            if k in self._inner:
                jk = idx[sel]  # contiguous: the task's picks in a block are consecutive
                sub, jj = self._inner[k].block(int(jk[0]), int(jk[-1]) + 1)
                leaf[sel], j[sel] = self._leaf_base[k] + sub, jj
            else:
                leaf[sel], j[sel] = self._leaf_base[k], idx[sel]
        sizes = np.asarray(self._sizes, dtype=np.int64)[leaf]
        epoch, pos = np.divmod(j, sizes)
        row = np.empty_like(j)
        for l in np.unique(leaf).tolist():
            sl = leaf == l
            for e in np.unique(epoch[sl]).tolist():
                s = sl & (epoch == e)
                row[s] = self.permutation(l, e)[pos[s]]
        return Picks(np.arange(start, stop, dtype=np.int64), child, leaf, row, epoch)

    def leaf_name(self, leaf: int) -> tuple[str, str | None]:
        """``(task, source or None)`` of a leaf index."""
        t = self.spec.tasks[self._leaf_task[leaf]]
        return t.name, (t.sources[leaf - self._leaf_base[self._leaf_task[leaf]]][0] if t.sources else None)

    # -- iteration, sharding, state --------------------------------------------------------
    def positions(self, chunk: int = 1 << 15) -> Iterator[np.ndarray]:
        """This shard's global positions from ``consumed``, in chunks (in global order)."""
        span = chunk * self.world * self.workers
        g0 = self.consumed
        while self.end is None or g0 < self.end:
            g1 = g0 + span if self.end is None else min(g0 + span, self.end)
            pos = shard_positions(g0, g1, consumed=self.consumed, rank=self.rank, world=self.world,
                                  worker=self.worker, workers=self.workers, block=self.block)
            if pos.size:
                yield pos
            g0 = g1

    def __iter__(self) -> Iterator[Pick]:
        names = [self.leaf_name(l) for l in range(len(self._sizes))]
        for pos in self.positions():
            p = self.picks(int(pos[0]), int(pos[-1]) + 1)
            off = pos - pos[0]
            for g, l, r in zip(pos.tolist(), p.leaf[off].tolist(), p.row[off].tolist()):
                self._last_local = (g - self.consumed) // self.world
                t, s = names[l]
                yield Pick(g, t, s, r)

    def __len__(self) -> int:
        if self.end is None:
            raise TypeError("an unbounded mix (repeat, no length) has no len()")
        n = max(self.end - self.consumed, 0)
        m = max(-(-(n - self.rank) // self.world), 0)  # this rank's picks
        cycle = self.block * self.workers
        full, rem = divmod(m, cycle)
        return full * self.block + min(max(rem - self.worker * self.block, 0), self.block)

    def state_dict(self, samples_seen: int | None = None) -> dict[str, Any]:
        """``{"consumed": global picks consumed, "spec": ..., "length": ...}``.

        ``samples_seen``: picks this rank has taken since ``consumed`` was set (all ranks in
        lockstep); default: what this object has yielded itself.
        """
        n = self._last_local + 1 if samples_seen is None else samples_seen
        c = self.consumed + n * self.world
        if self.end is not None:
            c = min(c, self.end)
        return {"consumed": c, "spec": self.spec.to_dict(), "length": self.length}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume at ``state["consumed"]``.

        Raises:
            ValueError: the state was made for another spec or length.
        """
        if MixSpec.from_dict(state["spec"]) != self.spec or state.get("length") != self.length:
            raise ValueError("state_dict belongs to another mix (spec or length differ); resume with the same spec")
        self.consumed = int(state["consumed"])
        self._last_local = -1
