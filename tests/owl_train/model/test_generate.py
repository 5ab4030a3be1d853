"""Generation: cached equals uncached, no state leaks between calls, seeded sampling."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _model_helpers import our_config, pixel_values_for, random_batch  # noqa: E402

from owl_train.model.generate import generate
from owl_train.model.model import OwlVL


@pytest.fixture(scope="module")
def model():
    return OwlVL(our_config()).reset_parameters(seed=0, std=0.2).eval()


def _inputs(seed, batch=3, left=True):
    g = torch.Generator().manual_seed(seed)
    ids, mask, grid, pts = random_batch(g, batch, max_images=2, left_pad=left, points=True, max_side=4)
    return dict(input_ids=ids, attention_mask=mask, image_grid_thw=grid,
                pixel_values=pixel_values_for(grid, g), points=pts)


@pytest.mark.parametrize("left", [True, False])
def test_cached_equals_uncached_greedy(model, left):
    x = _inputs(1, left=left)
    a = generate(model, **x, max_new_tokens=8)
    b = generate(model, **x, max_new_tokens=8, use_cache=False)
    assert a.shape == (3, 8) and torch.equal(a, b)


def test_cached_equals_uncached_sampled(model):
    x = _inputs(2)
    a = generate(model, **x, max_new_tokens=8, do_sample=True, temperature=0.8, top_p=0.9, seed=11)
    b = generate(model, **x, max_new_tokens=8, do_sample=True, temperature=0.8, top_p=0.9, seed=11, use_cache=False)
    c = generate(model, **x, max_new_tokens=8, do_sample=True, temperature=0.8, top_p=0.9, seed=12)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_calls_in_a_row_equal_fresh_models(model):
    x1, x2 = _inputs(3, batch=2), _inputs(4, batch=4, left=False)
    first, second = generate(model, **x1, max_new_tokens=6), generate(model, **x2, max_new_tokens=6)
    fresh = lambda: OwlVL(our_config()).reset_parameters(seed=0, std=0.2).eval()
    assert torch.equal(first, generate(fresh(), **x1, max_new_tokens=6))
    assert torch.equal(second, generate(fresh(), **x2, max_new_tokens=6))


def test_eos_stops_and_pads(model):
    x = _inputs(5)
    free = generate(model, **x, max_new_tokens=6)
    eos = int(free[0, 1])
    out = generate(model, **x, max_new_tokens=6, eos_token_id=eos, pad_token_id=0)
    row0 = out[0].tolist()
    assert row0[: row0.index(eos) + 1] == free[0, : row0.index(eos) + 1].tolist()
    assert all(t == 0 for t in row0[row0.index(eos) + 1:])
