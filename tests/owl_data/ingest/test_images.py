"""Image ingest on the real decoding hazards of ../shared/data/edge_cases and crafted files."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from owl_data.ingest.images import ImageError, load_image
from tests.conftest import need_shared_data


@pytest.fixture
def edge():
    return need_shared_data("edge_cases")


def test_upright_rgb_jpeg_is_stored_byte_for_byte(edge):
    p = edge / "exif_Landscape_1.jpg"
    d = load_image(p)
    assert not d.reencoded and d.data == p.read_bytes() and d.format == "jpeg"
    assert d.image_id == hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", ["exif_Landscape_3.jpg", "exif_Landscape_6.jpg", "exif_Portrait_6.jpg"])
def test_exif_rotated_images_are_stored_upright(edge, name):
    p = edge / name
    raw = Image.open(p)
    d = load_image(p)
    ref = np.asarray(ImageOps.exif_transpose(Image.open(p)).convert("RGB"))
    assert d.reencoded and d.format == "png"
    stored = Image.open(io.BytesIO(d.data))
    assert stored.getexif().get(0x0112) in (None, 1)   # orientation applied once, not stored again
    assert np.array_equal(np.asarray(stored), ref)       # lossless
    if name.endswith("_6.jpg"):
        assert (d.width, d.height) == (raw.height, raw.width)


def test_landscape_variants_show_the_same_picture(edge):
    one = load_image(edge / "exif_Landscape_1.jpg").pixels.astype(int)
    for n in (0, 3, 6):
        other = load_image(edge / f"exif_Landscape_{n}.jpg").pixels.astype(int)
        assert other.shape == one.shape
        assert np.abs(other - one).mean() < 8  # the same upright picture (JPEG noise only)


def test_cmyk_and_grayscale_become_rgb(edge):
    for name in ("pil_sample_cmyk.jpg", "hopper_gray.jpg"):
        d = load_image(edge / name)
        stored = Image.open(io.BytesIO(d.data))
        assert stored.mode == "RGB" and d.pixels.shape[2] == 3
    g = load_image(edge / "hopper_gray.jpg").pixels
    assert np.array_equal(g[..., 0], g[..., 1])


def test_broken_exif_is_ignored_and_corrupt_png_rejected(edge):
    d = load_image(edge / "broken_exif_dpi.jpg")
    assert d.width > 0 and d.orientation == 1
    with pytest.raises(ImageError) as e:
        load_image(edge / "broken.png")
    assert e.value.reason == "unreadable_image"


def test_16bit_is_scaled_not_clipped(tmp_path):
    a = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(a).save(p)
    assert Image.open(p).mode.startswith("I")
    d = load_image(p)
    assert d.pixels[0, :, 0].tolist() == [0, 1, 128, 255]


def test_palette_becomes_rgb(tmp_path):
    img = Image.new("P", (4, 2))
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.putpixel((1, 0), 1)
    p = tmp_path / "pal.png"
    img.save(p)
    d = load_image(p)
    assert d.pixels[0, 0].tolist() == [255, 0, 0] and d.pixels[0, 1].tolist() == [0, 255, 0]


def test_decompression_bomb_rejected_from_the_header(tmp_path):
    p = tmp_path / "big.png"
    Image.new("1", (4000, 3000)).save(p)  # 12 Mpx, a few kB on disk
    with pytest.raises(ImageError) as e:
        load_image(p, max_pixels=1_000_000)
    assert e.value.reason == "too_large"


def test_truncated_jpeg_and_missing_file(tmp_path, edge):
    data = (edge / "exif_Landscape_1.jpg").read_bytes()
    p = tmp_path / "trunc.jpg"
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError) as e:
        load_image(p)
    assert e.value.reason == "unreadable_image"
    with pytest.raises(ImageError) as e:
        load_image(tmp_path / "nope.jpg")
    assert e.value.reason == "missing_image"
