"""The point token: it changes the answer, through its Fourier term and through its rotary
position alone; packed rows equal their segments run alone."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _model_helpers import IMG, PT, VE, VS, our_config, pixel_values_for, random_batch  # noqa: E402

from owl_train.model.model import OwlVL


def _model():
    return OwlVL(our_config()).reset_parameters(seed=0, std=0.2).eval()


def _row():
    g = torch.Generator().manual_seed(0)
    grid = torch.tensor([[1, 8, 8]])
    ids = torch.tensor([[5, 6, VS] + [IMG] * 16 + [VE, PT, 7, 8, 9]])
    return ids, grid, pixel_values_for(grid, g)


def test_moving_the_point_changes_the_logits():
    m = _model()
    ids, grid, pv = _row()
    run = lambda p: m(ids, pixel_values=pv, image_grid_thw=grid, points=torch.tensor([p])).logits
    with torch.no_grad():
        a, b = run([0.1, 0.2]), run([0.8, 0.7])
        assert not torch.allclose(a[:, 20:], b[:, 20:], atol=1e-4)  # the point and after
        torch.testing.assert_close(a[:, :20], b[:, :20])  # causal: nothing before it moves
        m.point_encoder.proj.weight.zero_()  # through the rotary position alone
        a, b = run([0.1, 0.2]), run([0.8, 0.7])
        assert not torch.allclose(a[:, 20:], b[:, 20:], atol=1e-4)
        pos_a = m.position_ids(ids, grid, points=torch.tensor([[0.1, 0.2]]))[0]
        pos_b = m.position_ids(ids, grid, points=torch.tensor([[0.8, 0.7]]))[0]
        assert torch.equal(pos_a[0], pos_b[0]) and not torch.equal(pos_a[1:, :, 20], pos_b[1:, :, 20])


def test_packed_row_equals_segments_alone():
    m = _model()
    g = torch.Generator().manual_seed(9)
    parts = [random_batch(g, 1, max_images=2, max_side=4, points=True, left_pad=False) for _ in range(3)]
    pvs = [pixel_values_for(p[2], g) for p in parts]
    ids = torch.cat([p[0] for p in parts] + [torch.zeros(1, 4, dtype=torch.long)], dim=1)
    seg = torch.cat([torch.full_like(p[0], i) for i, p in enumerate(parts)] + [torch.full((1, 4), -1)], dim=1)
    mask = (seg >= 0).long()
    with torch.no_grad():
        packed = m(ids, attention_mask=mask, segment_ids=seg, pixel_values=torch.cat(pvs),
                   image_grid_thw=torch.cat([p[2] for p in parts]), points=torch.cat([p[3] for p in parts]))
        start = 0
        for p, pv in zip(parts, pvs):
            alone = m(p[0], pixel_values=pv, image_grid_thw=p[2], points=p[3])
            n = p[0].shape[1]
            assert torch.equal(packed.position_ids[:, :, start:start + n], alone.position_ids)
            torch.testing.assert_close(packed.logits[:, start:start + n], alone.logits, rtol=0, atol=1e-5)
            start += n


def test_backward_reaches_point_encoder_and_vision():
    m = _model().train()
    ids, grid, pv = _row()
    out = m(ids, pixel_values=pv, image_grid_thw=grid, points=torch.tensor([[0.3, 0.4]]))
    out.logits.float().logsumexp(-1).mean().backward()
    assert m.point_encoder.proj.weight.grad.abs().sum() > 0
    assert m.visual.patch_embed.grad.abs().sum() > 0
