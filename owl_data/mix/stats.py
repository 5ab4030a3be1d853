"""What a mix realised: picks per task and source, and the worst prefix deviation from the ratio.

The deviation of a task at prefix ``t`` is ``|c_k(t) - p_k t|`` (``c_k`` its picks among the
first ``t``, ``p_k`` its exact share); Tijdeman's rule keeps it under
:func:`~owl_data.mix.schedule.tijdeman_bound` for every prefix. A nested task's sources are
measured the same way over the prefixes of that task's picks, against its within ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple, Sequence, Union

import numpy as np
import pyarrow.parquet as pq

from owl_data.mix.io import MIX_JSON, MIX_PARQUET, read_mix
from owl_data.mix.schedule import tijdeman_bound
from owl_data.mix.spec import WARN_REPEATS, MixSpec, TaskSpec

__all__ = ["TaskStats", "SourceStats", "MixStats", "LeafRepeats", "prefix_deviation", "mix_stats", "leaf_repeats",
           "repeat_warnings", "WARN_REPEATS"]



class TaskStats(NamedTuple):
    """One task of a mix: ``picks`` realised, exact ``share`` and ``target`` (share x length),
    the worst prefix deviation (picks) and the bound the schedule guarantees."""

    task: str
    picks: int
    share: float
    target: float
    worst_deviation: float
    bound: float


class SourceStats(NamedTuple):
    """One source of a task: its ``picks``; the worst prefix deviation within the task
    (nested tasks only, else None)."""

    task: str
    source: str
    picks: int
    worst_deviation: float | None


@dataclass
class MixStats:
    """:func:`mix_stats`: the mix's ``length`` (picks), per task and per source, and ``meta``
    (the mix's ``mix.json``)."""

    length: int
    tasks: list[TaskStats]
    sources: list[SourceStats]
    meta: dict[str, Any]


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


def _labels(column: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Index of each value of ``column`` in ``names`` (-1 for a value not listed); int64."""
    labels = np.full(len(column), -1, dtype=np.int64)
    for k, n in enumerate(names):
        labels[column == n] = k
    return labels


def _spec_of(mix: Path, meta: dict[str, Any]) -> MixSpec:
    """The :class:`MixSpec` recorded in ``mix.json``.

    Raises:
        ValueError: a malformed ``spec``, naming the file.
    """
    try:
        return MixSpec.from_dict(meta["spec"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise ValueError(f"{Path(mix) / MIX_JSON}: malformed 'spec' ({type(exc).__name__}: {exc}); "
                         "write the mix again with owl-data mix") from None


def _source_stats(ts: TaskSpec, sources: np.ndarray) -> list[SourceStats]:
    """Per source of task ``ts``, given the ``source`` of each of its picks in order."""
    if not ts.sources:
        u, c = np.unique(sources.astype(str), return_counts=True) if len(sources) else ([], [])
        return [SourceStats(ts.name, str(s), int(n), None) for s, n in zip(u, c)]
    names = [s for s, _, _ in ts.sources]
    total = sum(w for _, w, _ in ts.sources)
    lab = _labels(sources, names)
    dev = prefix_deviation(lab, [w / total for _, w, _ in ts.sources])
    return [SourceStats(ts.name, s, int((lab == i).sum()), dev[i]) for i, s in enumerate(names)]


def mix_stats(mix: Path) -> MixStats:
    """Realised counts per task and source, target shares and worst prefix deviations.

    Raises:
        FileNotFoundError: not a mix folder.
        ValueError: an unreadable ``mix.json`` or a malformed spec (:func:`owl_data.mix.io.read_mix`).
    """
    meta = read_mix(mix)
    spec = _spec_of(mix, meta)
    t = pq.read_table(Path(mix) / MIX_PARQUET, columns=["task", "source"])
    names = [k.name for k in spec.tasks]
    task_col = np.asarray(t.column("task").to_numpy(zero_copy_only=False), dtype=object)
    src_col = np.asarray(t.column("source").to_numpy(zero_copy_only=False), dtype=object)
    labels = _labels(task_col, names)
    shares = spec.shares()
    dev = prefix_deviation(labels, shares)
    n_total = len(labels)
    bound = float(tijdeman_bound(len(names)))
    tasks = [TaskStats(n, int((labels == k).sum()), float(shares[k]), float(shares[k]) * n_total, dev[k], bound)
             for k, n in enumerate(names)]
    sources = [s for k, ts in enumerate(spec.tasks) for s in _source_stats(ts, src_col[labels == k])]
    return MixStats(length=n_total, tasks=tasks, sources=sources, meta=meta)


class LeafRepeats(NamedTuple):
    """One leaf (task, or task/source) of a mix: its ``rows``, its ``picks`` and the most times
    any one of its rows is picked (``ceil(picks / rows)``: each epoch is a permutation of the
    leaf's rows, so every row is picked once per whole epoch and the last partial epoch adds at
    most one)."""

    leaf: str
    rows: int
    picks: int
    max_repeats: int


def leaf_repeats(spec: MixSpec, length: int) -> list[LeafRepeats]:
    """Rows, picks and the largest repeat count of every leaf in a mix of ``spec`` of ``length`` picks."""
    from owl_data.mix.sampler import MixSampler

    picks = MixSampler(spec).leaf_picks(length)
    return [LeafRepeats(task if src is None else f"{task}/{src}", n, p, -(-p // n) if n else 0)
            for (task, src, n), p in zip(spec.leaves, picks)]


def repeat_warnings(spec: MixSpec, length: int, limit: int = WARN_REPEATS) -> list[str]:
    """One line per leaf whose rows repeat more than ``limit`` times in the mix (none when ``limit`` < 0).

    >>> spec = MixSpec.create({"vqa": 3, "caption": 300}, [1, 1], seed=0)
    >>> print(*repeat_warnings(spec, 600))
    vqa: its 3 rows are picked 300 times in 600 picks, each row up to 100 times (more than `warn_repeats` 10): the model will see them that often; add rows to vqa, lower its weight or shorten the mix
    """
    if limit < 0:
        return []
    return [f"{r.leaf}: its {r.rows} rows are picked {r.picks} times in {length} picks, each row up to "
            f"{r.max_repeats} times (more than `warn_repeats` {limit}): the model will see them that often; "
            f"add rows to {r.leaf.split('/')[0]}, lower its weight or shorten the mix"
            for r in leaf_repeats(spec, length) if r.max_repeats > limit]
