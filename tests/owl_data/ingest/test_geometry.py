"""EXIF transforms and annotation validation, on hand-worked examples and against Pillow."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from owl_data.ingest.geometry import GeometryError, resolve_instance, transform_mask, transform_xy
from owl_data.records import RLE, Box, Instance, MaskArray, Polygons


@pytest.mark.parametrize("orientation", range(1, 9))
def test_transform_matches_pillow_exif_transpose(orientation):
    # a 5x3 image with one marked pixel: its centre must map where Pillow moves the pixel
    raw = np.zeros((3, 5), dtype=np.uint8)
    raw[0, 1] = 255  # row 0, column 1 -> centre (1.5, 0.5)
    img = Image.fromarray(raw)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.info["exif"] = exif.tobytes()
    ref = np.asarray(ImageOps.exif_transpose(img))
    ours = transform_mask(raw, orientation)
    assert np.array_equal(ours, ref)
    x, y = transform_xy(1.5, 0.5, orientation, 5, 3)
    r, c = np.argwhere(ref == 255)[0]
    assert (x, y) == (c + 0.5, r + 0.5)


def _res(inst, declared=(100, 50), raw=(100, 50), orientation=1, rotate=False):
    return resolve_instance(inst, declared=declared, raw=raw, orientation=orientation, rotate=rotate)


def test_box_in_raw_frame_of_rotated_image():
    # raw 100x50, orientation 6 (rotate 90 cw): upright 50x100; raw (x, y) -> (50 - y, x)
    r = _res(Instance("a", "car", geometry=Box(10, 5, 30, 15)), raw=(100, 50), orientation=6, rotate=True)
    assert r.bbox == pytest.approx((35 / 50, 10 / 100, 45 / 50, 30 / 100))


def test_box_partly_outside_is_clipped_wholly_outside_rejected():
    r = _res(Instance("a", "car", geometry=Box(-10, 10, 20, 60)))
    assert r.bbox == pytest.approx((0.0, 0.2, 0.2, 1.0))
    with pytest.raises(GeometryError) as e:
        _res(Instance("a", "car", geometry=Box(120, 10, 150, 20)))
    assert e.value.reason == "outside_image"


@pytest.mark.parametrize("poly,reason", [
    ([10, 10, 20, 20], "degenerate_polygon"),                  # 4 numbers: pycocotools would read a box
    ([10, 10, 20, 20, 10, 10, 20, 20], "degenerate_polygon"),  # 4 vertices, 2 distinct
    ([10, 10, float("nan"), 20, 30, 5], "non_finite"),
    ([10, 10, 2e8, 20, 30, 2e8], "absurd_coordinates"),
    ([10, 10, 20], "bad_polygon"),
])
def test_bad_polygons(poly, reason):
    with pytest.raises(GeometryError) as e:
        _res(Instance("a", "car", geometry=Polygons([poly])))
    assert e.value.reason == reason


def test_polygon_rasterised_in_upright_frame():
    r = _res(Instance("a", "car", geometry=Polygons([[10, 10, 40, 10, 40, 30, 10, 30]])))
    full = r.full_mask(100, 50)
    assert full.shape == (50, 100)
    assert full[20, 25] and not full[5, 5]
    # kept as the crop of its box: offset = the box's top-left pixel
    assert r.offset == (int(np.flatnonzero(full.any(0))[0]), int(np.flatnonzero(full.any(1))[0]))
    assert r.mask.shape == (int(full.any(1).sum()), int(full.any(0).sum())) and r.mask.sum() == full.sum()
    assert r.bbox == pytest.approx((0.1, 0.2, 0.4, 0.6), abs=0.011)


def test_rle_and_mask_array():
    from pycocotools import mask as mask_utils

    m = np.zeros((50, 100), dtype=np.uint8, order="F")
    m[10:20, 30:60] = 1
    rle = mask_utils.encode(m)
    rle["counts"] = rle["counts"].decode()
    r = _res(Instance("a", "car", geometry=RLE(rle)))
    assert r.bbox == pytest.approx((0.3, 0.2, 0.6, 0.4))
    assert r.area == pytest.approx(300 / 5000)
    with pytest.raises(GeometryError) as e:
        _res(Instance("a", "car", geometry=RLE({"size": [50, 100], "counts": [1, 2, 3]})))
    assert e.value.reason == "bad_rle"
    with pytest.raises(GeometryError) as e:
        _res(Instance("a", "car", geometry=MaskArray(np.ones((10, 10), bool))))
    assert e.value.reason == "size_mismatch"


def test_point_outside_and_non_finite():
    with pytest.raises(GeometryError) as e:
        _res(Instance("a", "car", point=(150.0, 10.0)))
    assert e.value.reason == "outside_image"
    with pytest.raises(GeometryError) as e:
        _res(Instance("a", "car", point=(float("inf"), 10.0)))
    assert e.value.reason == "non_finite"
    r = _res(Instance("a", "car", point=(25.0, 10.0), geometry=Box(20, 5, 30, 15)))
    assert r.point == pytest.approx((0.25, 0.2))
