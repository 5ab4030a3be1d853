"""What a mix draws: the tasks with exact weights and row counts, the seed and the exhaustion
policy (:class:`MixSpec`), checked at construction; JSON-safe and exact (weights as ``"p/q"``).

A task may be nested: its rows then come from named sources with their own weights
(``within``), and the sampler picks a source inside the task by the same schedule
(:mod:`owl_data.mix.schedule`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Mapping, Sequence, Union

from owl_data.errors import FieldError
from owl_data.mix.schedule import Weight, parse_weight

WARN_REPEATS = 10
"""``owl-data mix --warn-repeats`` default: warn when a leaf's rows are each picked more often
(:func:`owl_data.mix.stats.repeat_warnings`)."""

__all__ = ["POLICIES", "TaskSpec", "MixSpec", "WARN_REPEATS"]

POLICIES = ("repeat", "stop")


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
            raise FieldError("seed", f"seed {self.seed!r} must be an integer >= 0")
        if self.on_exhausted not in POLICIES:
            raise FieldError("on_exhausted", f"on_exhausted {self.on_exhausted!r}: use one of {', '.join(POLICIES)}")

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
            weight = parse_weight(w, f"ratio of task {name!r}", "ratio")
            if name in within:
                if not isinstance(size, Mapping):
                    raise ValueError(f"task {name!r} is nested in within, so its size must map source -> rows")
                if set(size) != set(within[name]):
                    raise ValueError(f"task {name!r}: within names sources {sorted(within[name])} "
                                     f"but the task's rows come from {sorted(size)}; list each once")
                srcs = tuple((s, parse_weight(sw, f"within weight of {name}/{s}", "within"), int(size[s]))
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
