"""The schedule's run-skipping simulation against a plain step-through of Tijdeman's rule.

The reference below is the one-pick-at-a-time loop the schedule used before (O(n) per pick):
lengths, blocks, positions and counts must equal it exactly, for any weights, sizes and policy.
"""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from owl_data.mix import sampler as sampler_mod
from owl_data.mix.sampler import MixSampler
from owl_data.mix.schedule import Schedule, integer_weights
from owl_data.mix.spec import MixSpec


def _ref_step(w: list[int], t: int, counts: list[int]) -> int:
    """Tijdeman's rule at step ``t`` (1-based), one child at a time (the reference)."""
    n, W = len(w), sum(w)
    if n == 1:
        return 0
    M, best_d, best_k = 2 * n - 2, None, -1
    for k in range(n):
        if M * (w[k] * t - counts[k] * W) < W:
            continue
        d = max(t, -(-((M - 1) * W + M * counts[k] * W) // (M * w[k])))
        if best_d is None or d < best_d:
            best_d, best_k = d, k
    return best_k


def _ref_labels(w: list[int], steps: int) -> list[int]:
    counts, out = [0] * len(w), []
    for t in range(1, steps + 1):
        k = _ref_step(w, t, counts)
        counts[k] += 1
        out.append(k)
    return out


def _ref_position(w: list[int], child: int, j: int) -> int:
    """Step through picks until ``child`` has had ``j + 1`` of them."""
    counts, t = [0] * len(w), 0
    while True:
        t += 1
        k = _ref_step(w, t, counts)
        counts[k] += 1
        if k == child and counts[k] == j + 1:
            return t - 1


def _ref_leaf_positions(spec: MixSpec, j_of) -> list[int]:
    top = list(integer_weights([t.weight for t in spec.tasks]))
    out = []
    for k, t in enumerate(spec.tasks):
        for i, (_, _, n) in enumerate(t.sources or ((None, None, t.size),)):
            j = j_of(n)
            if t.sources:
                j = _ref_position(list(integer_weights([w for _, w, _ in t.sources])), i, j)
            out.append(_ref_position(top, k, j))
    return out


def _ref_length(spec: MixSpec, epochs: int | None) -> int:
    """The mix length by stepping through every pick (stop: natural end; else ``epochs``)."""
    if spec.on_exhausted == "stop":
        return min(_ref_leaf_positions(spec, lambda n: n))
    return max(_ref_leaf_positions(spec, lambda n: epochs * n - 1)) + 1


weights = st.lists(st.integers(1, 12), min_size=1, max_size=4)


@settings(max_examples=150, deadline=None)
@given(w=weights, a=st.integers(0, 200), span=st.integers(0, 120), j=st.integers(0, 40))
def test_run_simulation_equals_step_through(w, a, span, j):
    sim = Schedule(w, period_cap=0)  # never tabulated: the run-skipping path
    ref = _ref_labels(w, a + span + 1)
    child, index = sim.block(a, a + span)
    assert child.tolist() == ref[a:a + span]
    assert index.tolist() == [ref[:a + i].count(k) for i, k in enumerate(ref[a:a + span])]
    assert sim.counts_before(a).tolist() == [ref[:a].count(k) for k in range(len(w))]
    for k in range(len(w)):
        assert sim.position_of(k, j) == _ref_position(w, k, j)


@settings(max_examples=120, deadline=None)
@given(data=st.data(), policy=st.sampled_from(["repeat", "stop"]), epochs=st.integers(1, 3),
       tabulated=st.booleans())
def test_mix_lengths_equal_step_through(data, policy, epochs, tabulated):
    n = data.draw(st.integers(1, 4))
    ws = data.draw(st.lists(st.integers(1, 9), min_size=n, max_size=n))
    sizes = {f"t{i}": data.draw(st.integers(1, 12)) for i in range(n)}
    within = {}
    if n >= 2 and data.draw(st.booleans()):  # nest task t0 over two sources
        a, b = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
        within = {"t0": {"s0": data.draw(st.integers(1, 5)), "s1": data.draw(st.integers(1, 5))}}
        sizes["t0"] = {"s0": a, "s1": b}
    spec = MixSpec.create(sizes, ws, within=within, on_exhausted=policy)
    with pytest.MonkeyPatch.context() as mp:
        if not tabulated:
            mp.setattr(sampler_mod, "Schedule", lambda w: Schedule(w, period_cap=0))
        s = MixSampler(spec)
        got = s.stop_length() if policy == "stop" else s.epochs_length(epochs)
        for leaf, n in enumerate(s._sizes):  # the bound stop_length skips leaves by
            assert s._position_floor(leaf, n) <= s.leaf_position(leaf, n)
    assert got == _ref_length(spec, None if policy == "stop" else epochs)


def test_a_dominant_weight_no_longer_steps_through_every_pick():
    """1e6:1:1:1 (total past 2^17, untabulated): the lengths the step-through never finished."""
    spec = MixSpec.create({"vqa": 34, "caption": 25, "grounding": 52, "point_vqa": 429}, ["1e6", 1, 1, 1])
    s = MixSampler(spec)
    assert not s._top.periodic and s._top.total == 1_000_003
    assert s.stop_length() == 34  # the big task runs out long before a small one is first picked
    t0 = time.perf_counter()
    end = s.epochs_length(1)
    elapsed = time.perf_counter() - t0  # reported, not asserted
    # every task has all its rows picked by `end`, and the last pick completes one of them
    before, at = s._top.counts_before(end - 1), s._top.counts_before(end)
    assert (at >= np.array([34, 25, 52, 429])).all() and not (before >= np.array([34, 25, 52, 429])).all()
    assert end == s._top.position_of(3, 428) + 1 and 428 * 1_000_003 < end <= 429 * 1_000_003
    print(f"epochs_length(1) = {end} in {elapsed:.3f}s")
