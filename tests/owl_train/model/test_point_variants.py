"""The point-grounding variants in the model: (a) text placement, (c) interleaved M-RoPE,
(d) focus features, (f) the shared patch code, (e) crop tokens; new weights round-trip."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _model_helpers import IMG, PT, VE, VS, our_config, pixel_values_for, random_batch, tiny_hf_config  # noqa: E402

from owl_train.model.model import OwlVL
from owl_train.model.rope import get_rope_index

CROP = 305


def _model(**opts) -> OwlVL:
    cfg = dataclasses.replace(our_config(), crop_token_id=CROP, **opts)
    return OwlVL(cfg).reset_parameters(seed=0, std=0.2).eval()


def _row(side: int = 8):
    g = torch.Generator().manual_seed(0)
    grid = torch.tensor([[1, side, side]])
    n = side * side // 4
    ids = torch.tensor([[5, 6, VS] + [IMG] * n + [VE, PT, 7, 8, 9]])
    return ids, grid, pixel_values_for(grid, g), 3 + n + 1  # ids, grid, pixels, index of <|point|>


# -- (a) ---------------------------------------------------------------------------------------
def test_text_placement_positions_and_no_rotary_effect():
    m = _model(point_placement="text")
    ids, grid, pv, p = _row()
    pts = torch.tensor([[0.1, 0.2]])
    pos, deltas = m.position_ids(ids, grid, points=pts)
    ref, ref_d = get_rope_index(ids, grid, image_token_id=IMG, point_token_id=PT, points=pts, point_placement="text")
    assert torch.equal(pos, ref) and torch.equal(deltas, ref_d)
    assert pos[:, 0, p].tolist() == [float(pos[0, 0, p - 1] + 1)] * 3
    with torch.no_grad():
        m.point_encoder.proj.weight.zero_()  # without its Fourier code the point is invisible
        a = m(ids, pixel_values=pv, image_grid_thw=grid, points=torch.tensor([[0.1, 0.2]])).logits
        b = m(ids, pixel_values=pv, image_grid_thw=grid, points=torch.tensor([[0.8, 0.7]])).logits
    assert torch.equal(a, b)
    # (b) with the same zero code still moves the answer through the rotary position
    m_b = _model()
    with torch.no_grad():
        m_b.point_encoder.proj.weight.zero_()
        a = m_b(ids, pixel_values=pv, image_grid_thw=grid, points=torch.tensor([[0.1, 0.2]])).logits
        b = m_b(ids, pixel_values=pv, image_grid_thw=grid, points=torch.tensor([[0.8, 0.7]])).logits
    assert not torch.allclose(a[:, p:], b[:, p:], atol=1e-5)
