"""Mask crops: a raw-frame crop turned upright equals the full mask turned upright, under every
EXIF orientation, and an instance resolved from a crop equals one resolved from the full mask."""

from __future__ import annotations

import numpy as np
import pytest

from owl_data.ingest.crops import mask_bbox, tight_crop, transform_crop, window
from owl_data.ingest.geometry import GeometryError, resolve_instance
from owl_data.ingest.orientation import transform_mask, upright_size
from owl_data.records import Instance, MaskArray

RAW = (13, 7)  # (W, H): not square, so swapped orientations change the frame's shape


def _raw_mask(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros((RAW[1], RAW[0]), bool)
    r, c = rng.integers(0, RAW[1] - 2), rng.integers(0, RAW[0] - 3)
    m[r : r + 3, c : c + 4] = rng.random((3, 4)) < 0.7
    m[r, c] = m[r + 2, c + 3] = True  # the crop spans the whole 3x4 box
    return m


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("seed", range(5))
def test_crop_turns_like_the_full_mask(orientation, seed):
    full = _raw_mask(seed)
    crop, off = tight_crop(full, (0, 0))
    up, (x0, y0) = transform_crop(crop, off, orientation, RAW)
    UW, UH = upright_size(RAW, orientation)
    assert np.array_equal(window(up, (x0, y0), 0, 0, UW, UH), transform_mask(full, orientation))
    assert mask_bbox(up, (x0, y0), (UW, UH)) == mask_bbox(np.ascontiguousarray(transform_mask(full, orientation)))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_resolved_from_a_crop_equals_resolved_from_the_full_mask(orientation):
    full = _raw_mask(orientation)
    crop, off = tight_crop(full, (0, 0))
    pad = (max(off[0] - 1, 0), max(off[1] - 1, 0))  # a loose crop: one more column/row where possible
    loose = full[pad[1] : off[1] + crop.shape[0] + 1, pad[0] : off[0] + crop.shape[1] + 1]
    kw = dict(declared=RAW, raw=RAW, orientation=orientation, rotate=orientation != 1)
    a = resolve_instance(Instance("a", "car", geometry=MaskArray(full)), **kw)
    b = resolve_instance(Instance("a", "car", geometry=MaskArray(loose, offset=pad)), **kw)
    UW, UH = upright_size(RAW, orientation)
    assert (a.bbox, a.area, a.offset) == (b.bbox, b.area, b.offset)
    assert np.array_equal(a.mask, b.mask)
    assert np.array_equal(b.full_mask(UW, UH), transform_mask(full, orientation))
    # tight: the crop is the bounding box of the upright mask
    m = b.mask
    assert m[0].any() and m[-1].any() and m[:, 0].any() and m[:, -1].any()


def test_window_pads_outside_the_crop():
    m = np.array([[1, 0], [1, 1]], bool)
    w = window(m, (3, 2), 2, 1, 6, 4)  # columns 2..5, rows 1..3 of the frame
    assert w.tolist() == [[0, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0]]
    assert window(m, (3, 2), 0, 0, 2, 2).shape == (2, 2) and not window(m, (3, 2), 0, 0, 2, 2).any()


@pytest.mark.parametrize("shape,offset", [((3, 3), (11, 0)), ((3, 3), (-1, 0)), ((8, 2), (0, 0)), ((3, 3), (0, 5))])
def test_crop_outside_the_frame_is_rejected(shape, offset):
    with pytest.raises(GeometryError) as e:
        resolve_instance(Instance("a", "car", geometry=MaskArray(np.ones(shape, bool), offset=offset)),
                         declared=RAW, raw=RAW, orientation=1, rotate=False)
    assert e.value.reason == "size_mismatch"
