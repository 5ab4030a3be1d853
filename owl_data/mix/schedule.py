"""Ratio-aware mixing: an exact, seeded, resumable and sharded ``(task, row)`` sampler.

Scheduling (which task serves global pick ``t``) follows Tijdeman's rule for the chairman
assignment problem (R. Tijdeman, "The chairman assignment problem", Discrete Math. 32, 1980).
With ``n >= 2`` children of exact shares ``p_k = w_k / sum(w)`` and ``c_k`` picks so far, at
step ``t`` (1-based) serve, among the children with ``p_k * t - c_k >= 1 / (2n - 2)``, the one
whose deadline ``min{t' >= t : p_k * t' - c_k >= 1 - 1 / (2n - 2)}`` comes first (ties to the
lowest index). Every prefix then satisfies ``|c_k(t) - p_k * t| <= 1 - 1/(2n - 2) < 1`` for
every k, for any weights (one child: always it, deviation 0). Weights are exact rationals
(ints, decimal strings, ``Fraction``; a float is taken at its exact binary value) scaled to
integers, so the rule runs in integer arithmetic.

Memory and time: the scheduler's state is the ``n`` counts. With integer weights of sum
``W <= PERIOD_CAP`` the schedule repeats with period ``W`` (every lag is 0 at multiples of
``W``), so one period is tabulated and pick ``g`` costs O(1) (vectorised over blocks). Larger
``W`` (e.g. float weights) is simulated: O(n) per pick, O(n) memory, and jumping to pick ``g``
replays from 0 in O(g * n).

Rows: the ``j``-th pick of a leaf (a task, or a source inside a nested task) is row
``permutation(seed, leaf, e)[j % size]`` with ``e = j // size`` -- a fresh permutation per
epoch from ``numpy.random.default_rng(SeedSequence([seed, *sha256(leaf name), e]))``; no
global RNG. Under ``stop`` the stream ends at the first pick that would start a leaf's
second epoch.

Sharding: with offset ``q = g - consumed``, rank ``r`` of ``W`` takes ``q % W == r``; within a
rank, the rank-local index ``i = q // W`` goes to DataLoader worker ``(i // block) % K``.
The parts are disjoint, their union in global order is the single-process stream, and the
state is only ``consumed`` (plus the spec), so a resume may use any ``W`` and ``K``.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterator, Mapping, NamedTuple, Sequence, Union

import numpy as np

__all__ = [
    "Weight",
    "PERIOD_CAP",
    "parse_weight",
    "integer_weights",
    "Schedule",
    "TaskSpec",
    "MixSpec",
    "Pick",
    "Picks",
    "MixSampler",
    "shard_positions",
    "tijdeman_bound",
    "prefix_deviation",
]

Weight = Union[int, float, str, Fraction]
PERIOD_CAP = 1 << 17
POLICIES = ("repeat", "stop")


def parse_weight(x: Weight, what: str = "weight") -> Fraction:
    """An exact positive rational from an int, a decimal/fraction string, a Fraction or a float.

    Raises:
        ValueError: not a number, not finite, or not > 0 (message names ``what``).
    """
    try:
        if isinstance(x, float):
            if not math.isfinite(x):
                raise ValueError
            f = Fraction(x)
        else:
            f = Fraction(str(x).strip()) if isinstance(x, str) else Fraction(x)
    except (ValueError, TypeError, ZeroDivisionError):
        raise ValueError(f"{what} {x!r} is not a finite number; use e.g. 5, 0.5 or 1/3") from None
    if f <= 0:
        raise ValueError(f"{what} {x!r} must be > 0 (leave the task out instead)")
    return f


def integer_weights(weights: Sequence[Fraction]) -> tuple[int, ...]:
    """The smallest integers proportional to exact rational ``weights``."""
    den = math.lcm(*(w.denominator for w in weights))
    ints = [int(w * den) for w in weights]
    g = math.gcd(*ints)
    return tuple(i // g for i in ints)


def tijdeman_bound(n: int) -> Fraction:
    """The worst prefix deviation Tijdeman's rule allows for ``n`` children (0 for n = 1)."""
    return Fraction(0) if n <= 1 else 1 - Fraction(1, 2 * n - 2)


class Schedule:
    """Tijdeman's chairman-assignment schedule over children of integer weights.

    ``block(start, stop)`` gives, for each global position in ``[start, stop)`` (0-based),
    the child served and how many picks that child had before it (its occurrence index).
    """

    def __init__(self, weights: Sequence[int], period_cap: int = PERIOD_CAP) -> None:
        if not weights or any(int(w) <= 0 for w in weights):
            raise ValueError(f"weights must be positive integers, got {list(weights)}")
        self.weights = tuple(int(w) for w in weights)
        self.n = len(self.weights)
        self.total = sum(self.weights)
        self.periodic = self.total <= period_cap
        self._cursor = (0, [0] * self.n)  # positions done, counts (simulation mode)
        if self.periodic:
            child, _ = self._simulate(0, [0] * self.n, self.total)
            self.period = child
            occ = np.zeros(self.total, dtype=np.int64)
            seen = [0] * self.n
            for p, k in enumerate(child.tolist()):
                occ[p] = seen[k]
                seen[k] += 1
            self._occ_index = occ
            self._occ = [np.flatnonzero(child == k) for k in range(self.n)]
            self._w = np.asarray(self.weights, dtype=np.int64)

    def _step(self, t: int, counts: list[int]) -> int:
        """The child served at step ``t`` (1-based) given counts before it (integer exact)."""
        if self.n == 1:
            return 0
        w, W, M = self.weights, self.total, 2 * self.n - 2
        best_d, best_k = None, -1
        for k in range(self.n):
            if M * (w[k] * t - counts[k] * W) < W:  # p_k t - c_k < 1/(2n-2): not eligible
                continue
            num = (M - 1) * W + M * counts[k] * W  # deadline: M (w t' - c W) >= (M - 1) W
            d = max(t, -(-num // (M * w[k])))
            if best_d is None or d < best_d:
                best_d, best_k = d, k
        assert best_k >= 0, "Tijdeman's rule always has an eligible child"  # invariant
        return best_k

    def _simulate(self, done: int, counts: list[int], steps: int) -> tuple[np.ndarray, np.ndarray]:
        child = np.empty(steps, dtype=np.int64)
        index = np.empty(steps, dtype=np.int64)
        for s in range(steps):
            k = self._step(done + s + 1, counts)
            child[s], index[s] = k, counts[k]
            counts[k] += 1
        return child, index

    def _advance(self, to: int) -> list[int]:
        done, counts = self._cursor
        if to < done:
            done, counts = 0, [0] * self.n
        counts = list(counts)
        self._simulate(done, counts, to - done)
        self._cursor = (to, counts)
        return list(counts)

    def block(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(child, occurrence index) for positions ``start <= g < stop``; int64 arrays."""
        if stop <= start:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        if self.periodic:
            g = np.arange(start, stop, dtype=np.int64)
            m, p = np.divmod(g, self.total)
            child = self.period[p]
            return child, m * self._w[child] + self._occ_index[p]
        counts = self._advance(start)
        child, index = self._simulate(start, counts, stop - start)
        self._cursor = (stop, counts)
        return child, index

    def counts_before(self, g: int) -> np.ndarray:
        """Picks of each child among positions ``< g``."""
        if self.periodic:
            m, p = divmod(g, self.total)
            return m * self._w + np.bincount(self.period[:p], minlength=self.n)
        return np.asarray(self._advance(g), dtype=np.int64)

    def position_of(self, child: int, j: int) -> int:
        """The global position of ``child``'s ``j``-th pick (0-based)."""
        if self.periodic:
            m, r = divmod(j, self.weights[child])
            return m * self.total + int(self._occ[child][r])
        done, counts = self._cursor
        if counts[child] > j:
            done, counts = 0, [0] * self.n
        counts = list(counts)
        while True:
            k = self._step(done + 1, counts)
            counts[k] += 1
            done += 1
            if k == child and counts[k] == j + 1:
                self._cursor = (done, counts)
                return done - 1


@dataclass(frozen=True)
class TaskSpec:
    """One task of a mix: its weight, rows, and optional nested sources ``(name, weight, rows)``."""

    name: str
    weight: Fraction
    size: int
    sources: tuple[tuple[str, Fraction, int], ...] = ()


@dataclass(frozen=True)
class MixSpec:
    """What a mix draws: tasks with exact weights and sizes, the seed and the exhaustion policy.

    Raises (at construction):
        ValueError: no tasks, duplicate names, a weight <= 0, a task or source with zero
            rows (named), a negative seed or an unknown ``on_exhausted``.
    """

    tasks: tuple[TaskSpec, ...]
    seed: int = 0
    on_exhausted: str = "repeat"

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("a mix needs at least one task")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        for t in self.tasks:
            if t.weight <= 0:
                raise ValueError(f"task {t.name!r}: weight {t.weight} must be > 0")
            for s, w, n in t.sources:
                if w <= 0:
                    raise ValueError(f"task {t.name!r} source {s!r}: weight {w} must be > 0")
                if n <= 0:
                    raise ValueError(f"task {t.name!r} source {s!r} has no rows: nothing to mix; give it rows or drop it")
            if t.size <= 0:
                raise ValueError(f"task {t.name!r} has no rows: nothing to mix; give it rows or drop it from the tasks")
            if t.sources and t.size != sum(n for _, _, n in t.sources):
                raise ValueError(f"task {t.name!r}: size {t.size} is not the sum of its sources' rows")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed {self.seed!r} must be an integer >= 0")
        if self.on_exhausted not in POLICIES:
            raise ValueError(f"on_exhausted {self.on_exhausted!r}: use one of {', '.join(POLICIES)}")

    @classmethod
    def create(
        cls,
        sizes: Mapping[str, Union[int, Mapping[str, int]]],
        ratio: Union[Sequence[Weight], Mapping[str, Weight]],
        *,
        within: Mapping[str, Mapping[str, Weight]] | None = None,
        seed: int = 0,
        on_exhausted: str = "repeat",
    ) -> "MixSpec":
        """Build a spec: ``sizes`` maps task -> rows (or source -> rows when the task is nested
        in ``within``); ``ratio`` is one weight per task, in ``sizes`` order or by name."""
        names = list(sizes)
        if isinstance(ratio, Mapping):
            missing = [n for n in names if n not in ratio]
            if missing or len(ratio) != len(names):
                raise ValueError(f"ratio names {list(ratio)} do not match tasks {names}")
            ratio = [ratio[n] for n in names]
        if len(ratio) != len(names):
            raise ValueError(f"ratio has {len(ratio)} weight(s) for {len(names)} task(s) {names}")
        within = dict(within or {})
        unknown = [t for t in within if t not in sizes]
        if unknown:
            raise ValueError(f"within names unknown task(s) {unknown}; tasks: {names}")
        tasks = []
        for name, w in zip(names, ratio):
            size = sizes[name]
            weight = parse_weight(w, f"ratio of task {name!r}")
            if name in within:
                if not isinstance(size, Mapping):
                    raise ValueError(f"task {name!r} is nested in within, so its size must map source -> rows")
                if set(size) != set(within[name]):
                    raise ValueError(f"task {name!r}: within names sources {sorted(within[name])} "
                                     f"but the task's rows come from {sorted(size)}; list each once")
                srcs = tuple((s, parse_weight(sw, f"within weight of {name}/{s}"), int(size[s]))
                             for s, sw in within[name].items())
                tasks.append(TaskSpec(name, weight, sum(n for _, _, n in srcs), srcs))
            else:
                if isinstance(size, Mapping):
                    raise ValueError(f"task {name!r}: per-source sizes need a within ratio")
                tasks.append(TaskSpec(name, weight, int(size)))
        return cls(tuple(tasks), seed=seed, on_exhausted=on_exhausted)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, exact (weights as ``"p/q"`` strings)."""
        return {
            "seed": self.seed,
            "on_exhausted": self.on_exhausted,
            "tasks": [{"name": t.name, "weight": str(t.weight), "size": t.size,
                       "sources": [{"name": s, "weight": str(w), "size": n} for s, w, n in t.sources]}
                      for t in self.tasks],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MixSpec":
        tasks = tuple(
            TaskSpec(t["name"], Fraction(t["weight"]), int(t["size"]),
                     tuple((s["name"], Fraction(s["weight"]), int(s["size"])) for s in t.get("sources", ())))
            for t in d["tasks"])
        return cls(tasks, seed=int(d["seed"]), on_exhausted=d["on_exhausted"])

    @property
    def leaves(self) -> list[tuple[str, str | None, int]]:
        """``(task, source or None, rows)`` for every leaf, tasks in order then sources."""
        out: list[tuple[str, str | None, int]] = []
        for t in self.tasks:
            out += [(t.name, s, n) for s, _, n in t.sources] if t.sources else [(t.name, None, t.size)]
        return out

    def shares(self) -> list[Fraction]:
        """Exact task shares ``w_k / sum(w)``."""
        total = sum(t.weight for t in self.tasks)
        return [t.weight / total for t in self.tasks]


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

    def stop_length(self) -> int:
        """Picks before the first one that would start some leaf's second epoch."""
        return min(self.leaf_position(l, n) for l, n in enumerate(self._sizes))

    def epochs_length(self, epochs: int) -> int:
        """The shortest length in which every leaf has all its rows picked ``epochs`` times."""
        if epochs < 1:
            raise ValueError(f"epochs {epochs} must be >= 1")
        return max(self.leaf_position(l, epochs * n - 1) for l, n in enumerate(self._sizes)) + 1

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


def prefix_deviation(labels: np.ndarray, shares: Sequence[Union[Fraction, float]], chunk: int = 1 << 20) -> list[float]:
    """Worst ``|c_k(t) - p_k t|`` over the prefixes ``t = 1..N`` of ``labels`` (class index per
    pick), per class ``k``. Exact (integer arithmetic) for rational shares of small terms."""
    labels = np.asarray(labels, dtype=np.int64)
    worst = [0.0] * len(shares)
    for k, p in enumerate(shares):
        f = Fraction(p)
        a, b = f.numerator, f.denominator
        exact = max(a, b) * (labels.size + 1) < 2**62
        c0, best = 0, 0
        for s in range(0, labels.size, chunk):
            part = labels[s:s + chunk] == k
            t = np.arange(s + 1, s + part.size + 1, dtype=np.int64)
            c = c0 + np.cumsum(part, dtype=np.int64)
            if exact:
                best = max(best, int(np.abs(c * b - a * t).max()))
            else:
                best = max(best, float(np.abs(c - float(f) * t).max()))
            c0 = int(c[-1]) if c.size else c0
        worst[k] = best / b if exact else float(best)
    return worst
