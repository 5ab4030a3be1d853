"""Position ids: transformers parity, the worked example, padding, packing, points, virtual tokens."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _model_helpers import IMG, PT, VE, VS, mm_token_type_ids, random_batch, reference_rope_model  # noqa: E402

from owl_train.model.rope import PAD_POSITION, get_rope_index


@pytest.fixture(scope="module")
def ref():
    return reference_rope_model()


# what the seeded generator (seed 1234, 220 cases) produces: a change here means the cases changed
CASES = 220
COVERAGE = {"rows": 971, "images": 1959, "image_tokens": 39203, "left_padded": 106, "padded_rows": 748}


def test_matches_transformers_on_random_batches(ref):
    g = torch.Generator().manual_seed(1234)
    equal, seen = [], {k: 0 for k in COVERAGE}
    for case in range(CASES):
        batch = int(torch.randint(1, 9, (1,), generator=g))
        ids, mask, grid, _ = random_batch(g, batch, max_images=3)
        pos, deltas = get_rope_index(ids, grid, mask, image_token_id=IMG)
        rpos, rdeltas = ref.get_rope_index(ids, mm_token_type_ids(ids), grid, None, mask)
        real = mask.bool()
        assert pos.dtype == torch.long and pos.shape == (3, *ids.shape)
        if (torch.equal(pos[:, real], rpos[:, real]) and torch.equal(deltas, rdeltas.view(-1, 1))
                and bool((pos[:, ~real] == PAD_POSITION).all())):
            equal.append(case)
        seen["rows"] += batch
        seen["images"] += grid.shape[0]
        seen["image_tokens"] += int((ids[real] == IMG).sum())
        seen["left_padded"] += bool((~real[:, 0]).any())
        seen["padded_rows"] += int((~real).any(dim=1).sum())
    assert equal == list(range(CASES))  # every case equal, in all three comparisons
    assert seen == COVERAGE


def test_without_mask_and_text_only(ref):
    ids = torch.randint(0, 290, (3, 11))
    pos, deltas = get_rope_index(ids, None, None, image_token_id=IMG)
    assert torch.equal(pos, torch.arange(11).expand(3, 3, 11))
    assert torch.equal(deltas, torch.zeros(3, 1, dtype=torch.long))
    g = torch.Generator().manual_seed(5)
    ids, _, grid, _ = random_batch(g, 1)
    pos, deltas = get_rope_index(ids, grid, image_token_id=IMG)
    rpos, rdeltas = ref.get_rope_index(ids, mm_token_type_ids(ids), grid, None, None)
    assert torch.equal(pos, rpos) and torch.equal(deltas.view(-1), rdeltas.view(-1))


def test_docstring_worked_example():
    a, b, c, d = 5, 6, 7, 8
    ids = torch.tensor([[a, b, VS] + [IMG] * 6 + [VE, PT, c, d]])
    pos, deltas = get_rope_index(ids, torch.tensor([[1, 4, 6]]), image_token_id=IMG, point_token_id=PT,
                                 points=torch.tensor([[0.6, 0.6]]))
    expect = torch.tensor([
        [0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 3, 7, 8],
        [0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 3.7, 7, 8],
        [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 4.3, 7, 8],
    ])
    assert pos.dtype == torch.float32
    torch.testing.assert_close(pos[:, 0], expect, rtol=0, atol=1e-5)
    assert deltas.tolist() == [[-4]]
    # clamped at the border; at a patch centre it equals that patch's ids
    pos, _ = get_rope_index(ids, torch.tensor([[1, 4, 6]]), image_token_id=IMG, point_token_id=PT,
                            points=torch.tensor([[0.9, 0.0]]))
    assert pos[:, 0, 10].tolist() == [3.0, 3.0, 5.0]
    pos, _ = get_rope_index(ids, torch.tensor([[1, 4, 6]]), image_token_id=IMG, point_token_id=PT,
                            points=torch.tensor([[(1 + 0.5) / 3, (1 + 0.5) / 2]]))  # centre of patch (1, 1)
    torch.testing.assert_close(pos[:, 0, 10], pos[:, 0, 3 + 4].float())


def test_points_do_not_move_other_tokens(ref):
    g = torch.Generator().manual_seed(7)
    for _ in range(20):
        ids, mask, grid, pts = random_batch(g, 4, points=True)
        pos, deltas = get_rope_index(ids, grid, mask, image_token_id=IMG, point_token_id=PT, points=pts)
        img_of_row = torch.cumsum((ids == VS).sum(1), 0)
        for b in range(4):
            # removing the point tokens gives transformers' ids on every other real token
            keep = (ids[b] != PT) & mask[b].bool()
            sub = ids[b][keep][None]
            lo, hi = (0 if b == 0 else int(img_of_row[b - 1])), int(img_of_row[b])
            r2, d2 = ref.get_rope_index(sub, mm_token_type_ids(sub), grid[lo:hi], None, None)
            assert torch.equal(pos[:, b, keep].long(), r2[:, 0])
            assert int(deltas[b]) + int((ids[b] == PT).sum()) == int(d2)
            # each point: t = its image's start s, and s <= h <= s + H' - 1, s <= w <= s + W' - 1
            for k, col in enumerate((ids[b] == PT).nonzero().view(-1).tolist()):
                s = pos[0, b, col - 1 - int(grid[lo + k].prod()) // 4]  # first patch of its image
                t, h, w = pos[:, b, col].tolist()
                assert t == s and s <= h <= s + grid[lo + k, 1] // 2 - 1 and s <= w <= s + grid[lo + k, 2] // 2 - 1


def test_packed_segments_are_positioned_alone():
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        parts = [random_batch(g, 1, max_images=2, points=True, left_pad=False) for _ in range(3)]
        ids = torch.cat([p[0] for p in parts], dim=1)
        seg = torch.cat([torch.full_like(p[0], i) for i, p in enumerate(parts)], dim=1)
        pad = 5
        ids = torch.cat([ids, torch.zeros(1, pad, dtype=torch.long)], dim=1)
        seg = torch.cat([seg, torch.full((1, pad), -1)], dim=1)
        mask = (seg >= 0).long()
        grid = torch.cat([p[2] for p in parts])
        pts = torch.cat([p[3] for p in parts])
        pos, deltas = get_rope_index(ids, grid, mask, image_token_id=IMG, point_token_id=PT, points=pts,
                                     segment_ids=seg)
        start = 0
        for p in parts:
            alone, d_alone = get_rope_index(p[0], p[2], image_token_id=IMG, point_token_id=PT, points=p[3])
            n = p[0].shape[1]
            assert torch.equal(pos[:, :, start:start + n], alone)
            start += n
        assert torch.equal(deltas, d_alone)  # the last segment's delta


def test_virtual_tokens_are_numbered_as_text():
    virtual = 311  # any id that is not an image pad or a point: numbered as text
    base = [1, VS] + [IMG] * 4 + [VE, PT]
    grid = torch.tensor([[1, 4, 4]])
    ids = torch.tensor([base + [virtual] * 5 + [2, 3]])
    pos, _ = get_rope_index(ids, grid, image_token_id=IMG, point_token_id=PT, points=torch.tensor([[0.5, 0.5]]))
    # <|vision_end|> holds 1 + 1 + 2 = 4; the virtual tokens follow the point at 5, 6, ...
    assert pos[:, 0, 8:].tolist() == [[5, 6, 7, 8, 9, 10, 11]] * 3


def test_bad_inputs_raise():
    ids = torch.tensor([[VS] + [IMG] * 4 + [VE]])
    with pytest.raises(ValueError, match="image_grid_thw has 0"):
        get_rope_index(ids, None, image_token_id=IMG)
    with pytest.raises(ValueError, match="needs 2"):
        get_rope_index(ids, torch.tensor([[1, 2, 4]]), image_token_id=IMG)
    with pytest.raises(ValueError, match="no image before it"):
        get_rope_index(torch.tensor([[PT, 1]]), None, image_token_id=IMG, point_token_id=PT,
                       points=torch.tensor([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="points has 2"):
        get_rope_index(torch.tensor([[VS, IMG, VE, PT]]), torch.tensor([[1, 2, 2]]), image_token_id=IMG,
                       point_token_id=PT, points=torch.rand(2, 2))


def test_text_placement_worked_example():
    a, b, c, d = 5, 6, 7, 8
    ids = torch.tensor([[a, b, VS] + [IMG] * 6 + [VE, PT, c, d]])
    pos, deltas = get_rope_index(ids, torch.tensor([[1, 4, 6]]), image_token_id=IMG, point_token_id=PT,
                                 points=torch.tensor([[0.6, 0.6]]), point_placement="text")
    expect = torch.tensor([
        [0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 7, 8, 9],
        [0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 7, 8, 9],
        [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7, 8, 9],
    ], dtype=torch.float32)
    assert pos.dtype == torch.float32 and torch.equal(pos[:, 0], expect)
    assert deltas.tolist() == [[-3]]
    # the point does not move: the same ids wherever it points
    other, _ = get_rope_index(ids, torch.tensor([[1, 4, 6]]), image_token_id=IMG, point_token_id=PT,
                              points=torch.tensor([[0.1, 0.9]]), point_placement="text")
    assert torch.equal(other, pos)
    with pytest.raises(ValueError, match="point_placement"):
        get_rope_index(ids, torch.tensor([[1, 4, 6]]), image_token_id=IMG, point_placement="grid")


def test_text_placement_equals_transformers_with_the_point_as_text(ref):
    g = torch.Generator().manual_seed(11)
    for _ in range(30):
        ids, mask, grid, pts = random_batch(g, 4, points=True)
        pos, deltas = get_rope_index(ids, grid, mask, image_token_id=IMG, point_token_id=PT, points=pts,
                                     point_placement="text")
        rpos, rdeltas = ref.get_rope_index(ids, mm_token_type_ids(ids), grid, None, mask)
        real = mask.bool()
        assert torch.equal(pos[:, real].long(), rpos[:, real]) and bool((pos[:, real] % 1 == 0).all())
        assert torch.equal(deltas, rdeltas.view(-1, 1))


CROP = 305  # <|crop_pad|> in these tests


def test_crop_worked_example():
    a, b, c, d = 5, 6, 7, 8
    ids = torch.tensor([[a, b, VS] + [IMG] * 6 + [VE, PT] + [CROP] * 4 + [c, d]])
    grid = torch.tensor([[1, 4, 6], [1, 4, 4]])
    pos, deltas = get_rope_index(ids, grid, image_token_id=IMG, point_token_id=PT, points=torch.tensor([[0.6, 0.6]]),
                                 crop_token_id=CROP, crop_boxes=torch.tensor([[0.4, 0.2, 0.8, 0.6]]))
    expect = torch.tensor([
        [0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 3, 3, 3, 3, 3, 7, 8],
        [0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 3.7, 3.1, 3.1, 3.5, 3.5, 7, 8],
        [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 4.3, 4.0, 4.6, 4.0, 4.6, 7, 8],
    ])
    torch.testing.assert_close(pos[:, 0], expect, rtol=0, atol=1e-5)
    assert deltas.tolist() == [[-8]]
    # a crop square over the whole image puts its tokens at the image's own patch centres
    whole = torch.tensor([[1, 4, 6], [1, 4, 6]])
    ids2 = torch.tensor([[a, VS] + [IMG] * 6 + [VE, PT] + [CROP] * 6 + [c]])
    pos2, _ = get_rope_index(ids2, whole, image_token_id=IMG, point_token_id=PT, points=torch.tensor([[0.5, 0.5]]),
                             crop_token_id=CROP, crop_boxes=torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    torch.testing.assert_close(pos2[:, 0, 10:16], pos2[:, 0, 2:8])
    # with text placement the crop still sits in the image frame, and only the point moves cur
    pos3, d3 = get_rope_index(ids, grid, image_token_id=IMG, point_token_id=PT, points=torch.tensor([[0.6, 0.6]]),
                              crop_token_id=CROP, crop_boxes=torch.tensor([[0.4, 0.2, 0.8, 0.6]]),
                              point_placement="text")
    assert pos3[:, 0, 10].tolist() == [7, 7, 7] and pos3[:, 0, 15:].tolist() == [[8, 9]] * 3
    torch.testing.assert_close(pos3[:, 0, 11:15], expect[:, 11:15], rtol=0, atol=1e-5)
    assert d3.tolist() == [[-7]]


def test_crop_inputs_are_checked():
    ids = torch.tensor([[VS] + [IMG] * 4 + [VE, PT] + [CROP] * 4 + [1]])
    grid = torch.tensor([[1, 4, 4], [1, 4, 4]])
    kw = dict(image_token_id=IMG, point_token_id=PT, points=torch.tensor([[0.5, 0.5]]), crop_token_id=CROP)
    with pytest.raises(ValueError, match="crop_boxes has 0"):
        get_rope_index(ids, grid, **kw)
    with pytest.raises(ValueError, match="1 of them crops.*has 1 rows"):
        get_rope_index(ids, grid[:1], **kw, crop_boxes=torch.rand(1, 4))
    with pytest.raises(ValueError, match="crop 1 has 4 <\\|crop_pad\\|> tokens.*needs 1"):
        get_rope_index(ids, torch.tensor([[1, 4, 4], [1, 2, 2]]), **kw, crop_boxes=torch.rand(1, 4))
    with pytest.raises(ValueError, match="no image before it"):
        get_rope_index(torch.tensor([[1, PT] + [CROP] * 4]), grid[:1], **kw, crop_boxes=torch.rand(1, 4))
