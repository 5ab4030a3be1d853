"""The mixing schedule: exact integer weights and the greedy order of the tasks (pure functions).

Scheduling (which child serves global pick ``t``) follows Tijdeman's rule for the chairman
assignment problem (R. Tijdeman, "The chairman assignment problem", Discrete Math. 32, 1980).
With ``n >= 2`` children of exact shares ``p_k = w_k / sum(w)`` and ``c_k`` picks so far, at
step ``t`` (1-based) serve, among the children with ``p_k * t - c_k >= 1 / (2n - 2)``, the one
whose deadline ``min{t' >= t : p_k * t' - c_k >= 1 - 1 / (2n - 2)}`` comes first (ties to the
lowest index). Every prefix then satisfies ``|c_k(t) - p_k * t| <= 1 - 1/(2n - 2) < 1`` for
every k, for any weights (one child: always it, deviation 0). Weights are exact rationals
(ints, decimal strings, ``Fraction``; a float is taken at its exact binary value) scaled to
integers, so the rule runs in integer arithmetic.

Memory and time: the scheduler's state is the ``n`` counts. With integer weights of sum ``W``
the schedule repeats with period ``W`` (every lag is 0 at multiples of ``W``, and the rule
depends on the lags only). For ``W <= PERIOD_CAP`` one period is tabulated and pick ``g`` costs
O(1) (vectorised over blocks). Larger ``W`` (a dominant weight, float weights) is simulated in
runs -- one child served ``r`` times in a row, found in O(n log r) (:meth:`Schedule._run`) --
from the start of ``g``'s period or the cursor, in O(n) memory: ``1e6:1:1:1`` is a few runs
per period.

The spec a mix draws is :mod:`owl_data.mix.spec`; rows, sharding and resumption are
:mod:`owl_data.mix.sampler`; realised counts and prefix deviations :mod:`owl_data.mix.stats`.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Iterator, Sequence, Union

import numpy as np

from owl_data.errors import FieldError

__all__ = ["Weight", "PERIOD_CAP", "parse_weight", "integer_weights", "Schedule", "tijdeman_bound"]

Weight = Union[int, float, str, Fraction]
PERIOD_CAP = 1 << 17


def parse_weight(x: Weight, what: str = "weight", field: str = "weight") -> Fraction:
    """An exact positive rational from an int, a decimal/fraction string, a Fraction or a float.

    Raises:
        FieldError: of ``field``: not a number, not finite, or not > 0; the message starts with
            ``what`` (which by the field convention starts with ``field``).
    """
    try:
        if isinstance(x, float):
            if not math.isfinite(x):
                raise ValueError
            f = Fraction(x)
        else:
            f = Fraction(str(x).strip()) if isinstance(x, str) else Fraction(x)
    except (ValueError, TypeError, ZeroDivisionError):
        raise FieldError(field, f"{what} {x!r} is not a finite number; use e.g. 5, 0.5 or 1/3") from None
    if f <= 0:
        raise FieldError(field, f"{what} {x!r} must be > 0 (leave the task out instead)")
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

    def _run(self, t: int, counts: list[int], limit: int, hint: int | None) -> tuple[int, int, int | None]:
        """(child, r, next): the child served at step ``t`` (1-based; ``hint`` if known), the
        steps ``r <= limit`` it is served in a row from ``t``, and the child at ``t + r`` if known.

        Exact by monotonicity: while one child is served its lag only falls and its deadline
        moves at least a step per pick, while every other lag only rises and no deadline moves,
        so "the same child again at ``t + i``" holds for ``i < r`` and fails from ``r`` on; ``r``
        is found by doubling then bisection, O(n log r) per run instead of O(n r).
        """
        k = self._step(t, counts) if hint is None else hint
        if self.n == 1:
            return k, limit, None
        seen: dict[int, int] = {}

        def served(i: int) -> bool:
            c = list(counts)
            c[k] += i
            seen[i] = self._step(t + i, c)
            return seen[i] == k

        good, step, bad = 0, 1, None
        while bad is None:
            i = min(good + step, limit - 1)
            if i <= good:
                return k, limit, None
            if served(i):
                good, step = i, 2 * step
            else:
                bad = i
        while bad - good > 1:
            mid = (good + bad) // 2
            if served(mid):
                good = mid
            else:
                bad = mid
        return k, bad, seen.get(bad)

    def _runs(self, done: int, counts: list[int], steps: int) -> Iterator[tuple[int, int, int]]:
        """The ``steps`` picks after ``done`` as runs ``(child, its first occurrence index,
        length)``; ``counts`` (the picks before ``done``) is advanced in place."""
        hint = None
        while steps > 0:
            k, r, hint = self._run(done + 1, counts, steps, hint)
            yield k, counts[k], r
            counts[k] += r
            done, steps = done + r, steps - r

    def _simulate(self, done: int, counts: list[int], steps: int) -> tuple[np.ndarray, np.ndarray]:
        runs = np.asarray(list(self._runs(done, counts, steps)), dtype=np.int64).reshape(-1, 3)
        child = np.repeat(runs[:, 0], runs[:, 2])
        starts = np.repeat(np.cumsum(runs[:, 2]) - runs[:, 2], runs[:, 2])
        return child, np.repeat(runs[:, 1], runs[:, 2]) + np.arange(steps, dtype=np.int64) - starts

    def _advance(self, to: int) -> list[int]:
        """The counts before position ``to``, from the cursor or from the start of ``to``'s
        period (every count is ``m * w_k`` at position ``m * total``), whichever is nearer."""
        done, counts = self._cursor
        m, p = divmod(to, self.total)
        if to < done or to - done > p:
            done, counts = m * self.total, [m * w for w in self.weights]
        counts = list(counts)
        for _ in self._runs(done, counts, to - done):
            pass
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
        m, r = divmod(j, self.weights[child])  # the schedule repeats every `total` picks
        done, counts = 0, [0] * self.n
        for k, first, run in self._runs(0, counts, self.total):
            if k == child and first + run > r:
                return m * self.total + done + r - first
            done += run
        raise AssertionError("every child has its weight's picks in a period")  # invariant
