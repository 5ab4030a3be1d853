"""Image preprocessing equals transformers' Qwen2-VL PIL image processor; smart resize edges."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from owl_train.data import DataConfig, preprocess_image, smart_resize
from tests.conftest import need_shared_data

REAL_IMAGES = [
    "cityscapes/leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png",
    "images_misc/cityscapes_demo_palette.png",
    "edge_cases/hopper_gray.jpg",
    "edge_cases/pil_sample_cmyk.jpg",
    "edge_cases/exif_Landscape_6.jpg",
    "llava/waterview.jpg",
    "llava/extreme_ironing.jpg",
]


def _real_images() -> list:
    root = need_shared_data()
    paths = [root / p for p in REAL_IMAGES]
    paths += sorted((root / "drivelm").rglob("*.jpg"))[:4]  # 1600x900 nuScenes cameras
    paths += sorted((root / "flickr30k" / "images").glob("*.jpg"))[:3]
    return [p for p in paths if p.exists()]


@pytest.mark.realdata
@pytest.mark.parametrize("min_pixels,max_pixels", [(56 * 56, 28 * 28 * 256), (64 * 28 * 28, 28 * 28 * 1280)])
def test_preprocess_equals_transformers_pil(min_pixels, max_pixels):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    ref = Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)
    cfg = DataConfig(min_pixels=min_pixels, max_pixels=max_pixels)
    paths = _real_images()
    assert any(Image.open(p).size == (1600, 900) for p in paths), "the DriveLM 1600x900 images are missing"
    for p in paths:
        with Image.open(p) as im:
            im.load()
            want = ref(images=im, return_tensors="np")
            pv, grid = preprocess_image(im, cfg)
        assert grid.tolist() == want["image_grid_thw"].tolist(), p.name
        assert pv.dtype.is_floating_point and tuple(pv.shape) == want["pixel_values"].shape, p.name
        np.testing.assert_allclose(pv.numpy(), want["pixel_values"], rtol=0, atol=1e-5, err_msg=p.name)


def test_preprocess_rgba_composites_on_white():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (61, 97, 4), dtype=np.uint8), "RGBA")
    want = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=28 * 28 * 256)(images=im, return_tensors="np")
    pv, grid = preprocess_image(im, DataConfig())
    assert grid.tolist() == want["image_grid_thw"].tolist()
    np.testing.assert_allclose(pv.numpy(), want["pixel_values"], rtol=0, atol=1e-5)


def test_smart_resize_thin_image_never_below_28():
    assert smart_resize(31, 639, max_pixels=15680) == (28, 560)
    h, w = smart_resize(20, 2000, max_pixels=15680)  # transformers would give 28x1232 (over budget)
    assert h == 28 and w % 28 == 0 and h * w <= 15680
    assert smart_resize(2000, 20, max_pixels=15680)[::-1] == (h, w)
    assert min(smart_resize(10, 1000, min_pixels=56 * 56)) >= 28


def test_smart_resize_aspect_over_200_is_an_error():
    with pytest.raises(ValueError, match="aspect ratio 201.0 > 200"):
        smart_resize(10, 2010)
    with pytest.raises(ValueError, match="aspect ratio"):
        preprocess_image(Image.new("RGB", (5000, 20)), DataConfig())
    assert smart_resize(10, 2000, max_pixels=28 * 28 * 1280)  # exactly 200 is allowed


def test_smart_resize_equals_transformers_within_budget():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as ref

    rng = np.random.default_rng(1)
    for _ in range(2000):
        h, w = (int(v) for v in rng.integers(1, 3000, 2))
        if max(h, w) / min(h, w) > 200:
            continue
        lo, hi = 56 * 56, int(rng.choice([15680, 28 * 28 * 256, 28 * 28 * 1280]))
        got = smart_resize(h, w, min_pixels=lo, max_pixels=hi)
        assert got[0] % 28 == 0 and got[1] % 28 == 0 and min(got) >= 28, (h, w, got)
        want = ref(h, w, 28, lo, hi)
        if want[0] * want[1] <= hi and min(want) >= 28:
            assert got == want, (h, w, hi)
        else:
            assert got[0] * got[1] <= hi
        if math.isclose(h / w, 1.0):
            assert got[0] == got[1]


@pytest.mark.parametrize("field,value", [("min_pixels", 0), ("max_pixels", 100), ("max_length", 2),
                                         ("box_format", "xyxy"), ("pad_to_multiple_of", 0),
                                         ("num_virtual_tokens", -1), ("padding_side", "middle")])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"DataConfig.{field}="):
        DataConfig(**{field: value})
