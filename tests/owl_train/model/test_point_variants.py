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


# -- (c) ---------------------------------------------------------------------------------------
def _positions(g: torch.Generator) -> torch.Tensor:
    """(3, B, L) float ids with distinct t, h, w: collated-like rows with fractional points."""
    ids, mask, grid, pts = random_batch(g, 3, points=True)
    pos, _ = get_rope_index(ids, grid, mask, image_token_id=IMG, point_token_id=PT, points=pts)
    return pos


def _interleaved_by_hand(pos: torch.Tensor, inv_freq: torch.Tensor, section) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen3-VL's rule written out frequency by frequency (independent of mrope_axes)."""
    cols = []
    for j in range(inv_freq.numel()):
        axis = 0
        if j % 3 == 1 and j < 3 * section[1]:
            axis = 1
        elif j % 3 == 2 and j < 3 * section[2]:
            axis = 2
        cols.append(pos[axis].double() * float(inv_freq[j]))
    f = torch.stack(cols, dim=-1)  # (B, L, half)
    emb = torch.cat([f, f], dim=-1)
    return emb.cos(), emb.sin()


def test_mrope_axes_layouts():
    from owl_train.model.decoder import mrope_axes

    assert mrope_axes((2, 3, 3), 8).tolist() == [0, 0, 1, 1, 1, 2, 2, 2]
    assert mrope_axes((2, 3, 3), 8, interleaved=True).tolist() == [0, 1, 2, 0, 1, 2, 0, 1]
    q3 = mrope_axes((24, 20, 20), 64, interleaved=True)  # Qwen3-VL's section
    assert [int((q3 == a).sum()) for a in range(3)] == [24, 20, 20] and q3[:6].tolist() == [0, 1, 2, 0, 1, 2]
    assert q3[60:].tolist() == [0, 0, 0, 0]


def test_chunked_cos_sin_equal_transformers_qwen2_vl():
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLRotaryEmbedding

    from owl_train.model.decoder import mrope_cos_sin

    ref = Qwen2VLRotaryEmbedding(tiny_hf_config().text_config)
    g = torch.Generator().manual_seed(21)
    for _ in range(5):
        pos = _positions(g)
        rc, rs = ref(torch.zeros(1), pos)
        c, s = mrope_cos_sin(pos, ref.inv_freq, (2, 3, 3), torch.float32)
        assert torch.equal(c, rc) and torch.equal(s, rs)


def test_interleaved_cos_sin_equal_an_independent_computation_and_qwen3_vl():
    from owl_train.model.decoder import mrope_cos_sin

    m = _model(mrope_interleaved=True)
    inv = m.decoder.inv_freq
    g = torch.Generator().manual_seed(22)
    for _ in range(5):
        pos = _positions(g)
        c, s = mrope_cos_sin(pos, inv, (2, 3, 3), torch.float32, interleaved=True)
        hc, hs = _interleaved_by_hand(pos, inv, (2, 3, 3))
        torch.testing.assert_close(c.double(), hc, rtol=0, atol=1e-6)
        torch.testing.assert_close(s.double(), hs, rtol=0, atol=1e-6)
        chunked, _ = mrope_cos_sin(pos, inv, (2, 3, 3), torch.float32)
        assert not torch.allclose(c, chunked, atol=1e-3)  # a different layout on image tokens
        try:
            from transformers.models.qwen3_vl.configuration_qwen3_vl import Qwen3VLTextConfig
            from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextRotaryEmbedding
        except ImportError:  # pragma: no cover - older transformers
            continue
        ref = Qwen3VLTextRotaryEmbedding(Qwen3VLTextConfig(
            hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            rope_parameters=dict(rope_type="default", rope_theta=10000.0, mrope_section=[2, 3, 3])))
        rc, rs = ref(torch.zeros(1), pos)
        assert torch.equal(c, rc) and torch.equal(s, rs)


def test_interleaving_changes_image_rows_only():
    ids, grid, pv, _ = _row()
    text = torch.randint(0, 290, (2, 9), generator=torch.Generator().manual_seed(1))
    chunked, inter = _model(), _model(mrope_interleaved=True)
    with torch.no_grad():
        # text-only rows have t = h = w, where both layouts rotate alike
        assert torch.equal(chunked(text).logits, inter(text).logits)
        a = chunked(ids, pixel_values=pv, image_grid_thw=grid, points=torch.tensor([[0.3, 0.4]])).logits
        b = inter(ids, pixel_values=pv, image_grid_thw=grid, points=torch.tensor([[0.3, 0.4]])).logits
    assert not torch.allclose(a, b, atol=1e-4)
