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

Memory and time: the scheduler's state is the ``n`` counts. With integer weights of sum
``W <= PERIOD_CAP`` the schedule repeats with period ``W`` (every lag is 0 at multiples of
``W``), so one period is tabulated and pick ``g`` costs O(1) (vectorised over blocks). Larger
``W`` (e.g. float weights) is simulated: O(n) per pick, O(n) memory, and jumping to pick ``g``
replays from 0 in O(g * n).

The spec a mix draws is :mod:`owl_data.mix.spec`; rows, sharding and resumption are
:mod:`owl_data.mix.sampler`; realised counts and prefix deviations :mod:`owl_data.mix.stats`.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Sequence, Union

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
