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


# -- (d) ---------------------------------------------------------------------------------------
def test_bilinear_cells_by_hand():
    from owl_train.model.point import bilinear_cells

    hw = torch.tensor([[2, 3], [2, 3], [2, 3]])
    cells, w = bilinear_cells(torch.tensor([[0.6, 0.6], [0.95, 0.0], [0.5, 0.75]]), hw)
    # (0.6, 0.6): u = 0.6·3 − 0.5 = 1.3, v = 0.6·2 − 0.5 = 0.7
    assert cells[0].tolist() == [1, 2, 4, 5]
    torch.testing.assert_close(w[0], torch.tensor([0.7 * 0.3, 0.3 * 0.3, 0.7 * 0.7, 0.3 * 0.7]), rtol=0, atol=1e-6)
    # clamped to the last column and the first row: all weight on cell (0, 2)
    assert cells[1].tolist() == [2, 2, 5, 5] and w[1].tolist() == [1.0, 0.0, 0.0, 0.0]
    # the centre of cell (1, 1) is exactly that cell
    assert cells[2, 0] == 4 and w[2].tolist() == [1.0, 0.0, 0.0, 0.0]


def _cell_features(m: OwlVL, pv: torch.Tensor, n_cells: int) -> torch.Tensor:
    """The focus MLP on every merged cell of one image, written out (N_cells, D)."""
    fs, w = m.point_focus, m.visual.patch_embed
    e = pv.view(n_cells, 4, -1) @ w.view(w.shape[0], -1).T  # (N_cells, 4, E)
    e = torch.nn.functional.layer_norm(e, (e.shape[-1],), fs.norm.weight, fs.norm.bias, 1e-6)
    return fs.fc2(torch.nn.functional.gelu(fs.fc1(e.flatten(1))))


def test_focus_is_the_bilinear_sample_of_local_cell_features():
    m = _model(point_focus=True)
    ids, grid, pv, p = _row()  # merged grid 4 x 4
    pt = torch.tensor([[0.6, 0.3]])  # u = 1.9, v = 0.7: cells (0, 1), (0, 2), (1, 1), (1, 2)
    with torch.no_grad():
        x = m.embed(ids, pv, grid, pt)
        base = _model()  # the same weights without the focus term
        base.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("point_focus.")})
        x0 = base.embed(ids, pv, grid, pt)
        f = _cell_features(m, pv, 16)
    au, av = 0.9, 0.7
    expect = (1 - av) * (1 - au) * f[1] + (1 - av) * au * f[2] + av * (1 - au) * f[5] + av * au * f[6]
    torch.testing.assert_close(x[0, p] - x0[0, p], expect, rtol=0, atol=1e-5)
    assert float(expect.abs().max()) > 1e-2
    others = torch.ones(ids.shape[1], dtype=torch.bool)
    others[p] = False
    assert torch.equal(x[0, others], x0[0, others])  # only the point token gets the focus term


def _cell_rows(cells: list[int]) -> torch.Tensor:
    return torch.tensor([4 * c + k for c in cells for k in range(4)])  # block-major: 4 patch rows per cell


def test_focus_locality_near_pixels_change_far_pixels_are_bit_identical():
    m = _model(point_focus=True)
    ids, grid, pv, p = _row()  # merged 4 x 4
    pt = torch.tensor([[0.6, 0.3]])  # neighbours: cells 1, 2, 5, 6
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        x = m.embed(ids, pv, grid, pt)
        far = pv.clone()
        far[_cell_rows([12, 13, 14, 15, 3, 8])] = torch.randn(24, pv.shape[1], generator=g)
        x_far = m.embed(ids, far, grid, pt)
        near = pv.clone()
        near[_cell_rows([5])] += 0.5
        x_near = m.embed(ids, near, grid, pt)
    assert torch.equal(x_far[0, p], x[0, p])
    img = ids[0] == IMG
    assert not torch.allclose(x_far[0, img][5], x[0, img][5], atol=1e-4)  # the ViT itself saw the far change
    assert not torch.allclose(x_near[0, p], x[0, p], atol=1e-4)
    # the ViT output sampled instead would not be local: every image token moved
    assert bool((x_far[0, img] - x[0, img]).abs().amax(-1).gt(0).all())


def test_focus_trains_from_its_zero_init():
    m = _model(point_focus=True).train()
    with torch.no_grad():
        m.point_focus.fc2.weight.zero_()
        m.point_focus.fc2.bias.zero_()
    ids, grid, pv, p = _row()
    pt = torch.tensor([[0.4, 0.4]])
    opt = torch.optim.SGD(m.point_focus.parameters(), lr=0.5)
    for step in range(2):
        opt.zero_grad()
        m(ids, pixel_values=pv, image_grid_thw=grid, points=pt).logits[0, p:].logsumexp(-1).sum().backward()
        if step == 0:
            assert m.point_focus.fc2.weight.grad.abs().sum() > 0
            assert m.point_focus.fc1.weight.grad.abs().sum() == 0  # behind the zero layer, for now
        opt.step()
    assert m.point_focus.fc2.weight.abs().sum() > 0 and m.point_focus.fc1.weight.grad.abs().sum() > 0


def test_focus_weights_round_trip_in_owl_extra(tmp_path):
    from safetensors import safe_open

    from owl_train.model.checkpoint import CheckpointError, load_pretrained, save_pretrained

    m = _model(point_focus=True)
    save_pretrained(m, tmp_path / "d")
    with safe_open(str(tmp_path / "d" / "owl_extra.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    assert keys == {"point_encoder.proj.weight", "point_focus.norm.weight", "point_focus.norm.bias",
                    "point_focus.fc1.weight", "point_focus.fc1.bias", "point_focus.fc2.weight",
                    "point_focus.fc2.bias"}
    again = load_pretrained(tmp_path / "d")
    for k, v in m.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k
    # the same weights under a config without the focus: the extra file no longer fits
    b = _model()
    save_pretrained(b, tmp_path / "b")
    (tmp_path / "b" / "owl_extra.safetensors").unlink()
    (tmp_path / "d" / "config.json").replace(tmp_path / "b" / "config.json")
    fresh = load_pretrained(tmp_path / "b")  # focus on, no extra file: the focus starts at zero
    assert not fresh.point_focus.fc2.weight.any() and torch.equal(fresh.point_focus.fc1.weight,
                                                                  OwlVL(fresh.config).point_focus.fc1.weight)
    save_pretrained(m, tmp_path / "d2")
    (tmp_path / "d2" / "config.json").write_text((tmp_path / "d2" / "config.json").read_text().replace(
        '"point_focus": true', '"point_focus": false'))
    with pytest.raises(CheckpointError, match="point_focus"):
        load_pretrained(tmp_path / "d2")


# -- (f) ---------------------------------------------------------------------------------------
def test_patch_centres_by_hand():
    from owl_train.model.point import patch_centres

    c = patch_centres(torch.tensor([[1, 4, 6], [1, 2, 2]]), 2)  # merged 2 x 3, then 1 x 1
    expect = torch.tensor([[1 / 6, 0.25], [0.5, 0.25], [5 / 6, 0.25], [1 / 6, 0.75], [0.5, 0.75], [5 / 6, 0.75],
                           [0.5, 0.5]])
    assert torch.equal(c, expect)


def test_patch_code_adds_exactly_the_point_code_to_image_tokens():
    from owl_train.model.point import patch_centres

    m = _model(point_patch_code=True)
    base = _model()
    base.load_state_dict(m.state_dict())
    ids, grid, pv, p = _row(side=4)  # merged 2 x 2
    ids = torch.cat([ids, torch.tensor([[VS] + [IMG] * 6 + [VE, 9]])], dim=1)  # a second image, merged 2 x 3
    grid = torch.cat([grid, torch.tensor([[1, 4, 6]])])
    pv = torch.cat([pv, pixel_values_for(grid[1:], torch.Generator().manual_seed(3))])
    pt = torch.tensor([[0.3, 0.7]])
    with torch.no_grad():
        x, x0 = m.embed(ids, pv, grid, pt), base.embed(ids, pv, grid, pt)
        code = m.point_encoder(patch_centres(grid, 2))  # (4 + 6, D)
        at_point = m.point_encoder(pt)
    img = ids[0] == IMG
    assert torch.equal(x[0, img], x0[0, img] + code)
    assert torch.equal(x[0, ~img], x0[0, ~img])  # text and the point token are untouched
    assert float(code.abs().max()) > 1e-2
    # the point and the patch under it share one code: at a cell centre they are the same vector
    torch.testing.assert_close(m.point_encoder(torch.tensor([[0.75, 0.25]])), code[1:2], rtol=0, atol=1e-6)
    assert not torch.equal(at_point, code[0:1])


# -- (e) ---------------------------------------------------------------------------------------
def _crop_row():
    g = torch.Generator().manual_seed(4)
    grid = torch.tensor([[1, 8, 8], [1, 4, 4]])  # the image (merged 4 x 4), its crop (2 x 2)
    ids = torch.tensor([[5, 6, VS] + [IMG] * 16 + [VE, PT] + [CROP] * 4 + [7, 8, 9]])
    pv = pixel_values_for(grid, g)
    return ids, grid, pv, torch.tensor([[0.4, 0.6]]), torch.tensor([[0.3, 0.5, 0.5, 0.7]])


def test_crop_tokens_are_the_crop_frame_through_the_same_tower():
    m = _model(foveal_crop=True, point_patch_code=True)
    ids, grid, pv, pt, box = _crop_row()
    with torch.no_grad():
        x = m.embed(ids, pv, grid, pt)
        alone = m.visual(pv[64:], grid[1:])  # the crop as its own frame
        img_alone = m.visual(pv[:64], grid[:1])
    crop = ids[0] == CROP
    torch.testing.assert_close(x[0, crop], alone, rtol=0, atol=1e-5)  # no patch code on crop tokens
    assert not torch.allclose(x[0, ids[0] == IMG], img_alone, atol=1e-4)  # image tokens carry it
    pos, _ = m.position_ids(ids, grid, points=pt, crop_boxes=box)
    ref, _ = get_rope_index(ids, grid, image_token_id=IMG, point_token_id=PT, points=pt, crop_token_id=CROP,
                            crop_boxes=box)
    assert torch.equal(pos, ref)
    # s = 3, merged 4 x 4; crop centres x = 0.35, 0.45 and y = 0.55, 0.65 of the image
    torch.testing.assert_close(pos[:, 0, 21:25], torch.tensor([[3.0] * 4, [4.7, 4.7, 5.1, 5.1], [3.9, 4.3, 3.9, 4.3]]),
                               rtol=0, atol=1e-5)


def test_generation_with_a_crop_cached_equals_uncached():
    from owl_train.model.generate import generate

    m = _model(foveal_crop=True, point_focus=True, mrope_interleaved=True)
    ids, grid, pv, pt, box = _crop_row()
    kw = dict(pixel_values=pv, image_grid_thw=grid, points=pt, crop_boxes=box, max_new_tokens=6)
    a = generate(m, ids, **kw)
    b = generate(m, ids, use_cache=False, **kw)
    assert a.shape == (1, 6) and torch.equal(a, b) and not bool((a == CROP).any())
    with pytest.raises(ValueError, match="crop_boxes has 0"):
        m(ids, pixel_values=pv, image_grid_thw=grid, points=pt)
