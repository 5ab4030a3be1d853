"""The gallery's zoom around the point (owl_data.corpus.gallery_images): the crop, its pixels and
its marks, on crafted images whose every pixel says where it is, and in a written gallery."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from owl_data.corpus.gallery import GalleryConfig, write_gallery
from owl_data.corpus.gallery_images import (ARM_PX, GAP_PX, ZoomCrop, decode, write_images, zoom_crop,
                                            zoom_overlay)
from owl_data.corpus.read import CorpusReader

ID = "ab" * 32


def _coded(w: int, h: int) -> np.ndarray:
    """An RGB image whose pixel (x, y) holds (x % 256, y % 256, (x // 256) * 16 + y // 256)."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx % 256, yy % 256, (xx // 256) * 16 + yy // 256], axis=-1).astype(np.uint8)


class _Images:
    """Stands in for a CorpusReader: ``read_images`` returns the one crafted image."""

    def __init__(self, arr: np.ndarray):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        self.table = pa.table({"image_id": [ID], "bytes": [buf.getvalue()], "width": [arr.shape[1]],
                               "height": [arr.shape[0]]})

    def read_images(self, ids, columns):
        assert ids == [ID]
        return self.table.select(columns)


def _row(px, py, bbox=None):
    return {"image_id": ID, "px": px, "py": py, "bbox": bbox}


@pytest.mark.parametrize("x,y,w,h,crop", [
    (0.5, 0.5, 1600, 900, ZoomCrop(725, 375, 150)),   # 900 / 6 = 150, centred on (800, 450)
    (0.99, 0.01, 1600, 900, ZoomCrop(1450, 0, 150)),  # (1584, 9): shifted inside, not shrunk
    (0.0, 1.0, 1600, 900, ZoomCrop(0, 750, 150)),
    (0.5, 0.5, 256, 128, ZoomCrop(80, 16, 96)),       # 128 / 6 = 21 < 96: the 96 px floor
    (0.3, 0.6, 60, 40, ZoomCrop(0, 0, 40)),           # smaller than 96: the whole shorter side
    (0.25, 0.75, 4000, 3000, ZoomCrop(750, 2000, 500)),
])
def test_zoom_crop_hand_worked(x, y, w, h, crop):
    got = zoom_crop(x, y, w, h)
    assert got == crop
    assert 0 <= got.x0 <= x * w <= got.x0 + got.side <= w and 0 <= got.y0 <= y * h <= got.y0 + got.side <= h


def test_zoom_crop_refuses_bad_input():
    with pytest.raises(ValueError, match="normalised"):
        zoom_crop(1.2, 0.5, 100, 100)
    with pytest.raises(ValueError, match="at least 1 px"):
        zoom_crop(0.5, 0.5, 0, 100)


@pytest.mark.parametrize("point,box", [
    ((0.5, 0.5), (152, 102, 248, 198)),  # 400x300: side 96, centred on (200, 150)
    ((1.0, 0.0), (304, 0, 400, 96)),     # the corner: clamped, the point on the crop's edge
    ((0.02, 0.97), (0, 204, 96, 300)),
])
def test_zoom_pixels_are_the_crop_at_the_point(tmp_path, point, box):
    arr = _coded(400, 300)
    rows = [("point_vqa", _row(*point)), ("grounding", _row(None, None, [0.1, 0.1, 0.2, 0.2]))]
    sizes, zooms = write_images(_Images(arr), rows, tmp_path, 320)
    assert sizes == {ID: (320, 240)} and set(zooms) == {0}  # no point, no zoom
    crop, full = zooms[0]
    assert crop.box == box and full == (400, 300)
    zoom = np.asarray(Image.open(tmp_path / "zooms" / f"{ID}_{box[0]}_{box[1]}_{crop.side}.png"))
    x0, y0, x1, y1 = box
    assert zoom.shape == (96, 96, 3)
    assert (zoom == arr[y0:y1, x0:x1]).all()
    assert tuple(zoom[0, 0]) == (x0 % 256, y0 % 256, (x0 // 256) * 16 + y0 // 256)  # the coded pixel (x0, y0)


def test_zoom_of_a_real_drivelm_sized_frame(tmp_path):
    arr = _coded(1600, 900)
    rows = [("point_vqa", _row(1043.2 / 1600, 82.2 / 900, [676.4 / 1600, 0.0, 1452.6 / 1600, 171.5 / 900]))]
    _, zooms = write_images(_Images(arr), rows, tmp_path, 320)
    crop, _ = zooms[0]
    assert crop == ZoomCrop(968, 7, 150)  # round(1043.2 - 75), round(82.2 - 75)
    zoom = np.asarray(Image.open(tmp_path / "zooms" / f"{ID}_968_7_150.png"))
    assert (zoom == arr[7:157, 968:1118]).all()


def test_overlay_marks_the_point_and_box_without_covering_the_point():
    crop = ZoomCrop(725, 375, 150)
    svg = zoom_overlay(crop, 0.5, 0.5, 1600, 900, (0.45, 0.45, 0.55, 0.55), 180)
    assert 'viewBox="0 0 150 150" width="180" height="180"' in svg
    # box (720, 405)-(880, 495) in the crop's frame: x 720 - 725 = -5, y 405 - 375 = 30
    assert '<rect class="box" x="-5.00" y="30.00" width="160.00" height="90.00"/>' in svg
    cross = re.search(r'<path class="cross" d="([^"]+)" data-cx="([^"]+)" data-cy="([^"]+)"', svg)
    assert (float(cross[2]), float(cross[3])) == (75.0, 75.0)  # (800, 450) - (725, 375)
    ends = np.array([float(v) for v in re.findall(r"-?\d+\.\d+", cross[1])]).reshape(-1, 2)
    dist = np.hypot(ends[:, 0] - 75, ends[:, 1] - 75) * 180 / 150  # in display px
    assert np.allclose(sorted(dist), [GAP_PX] * 4 + [GAP_PX + ARM_PX] * 4, atol=0.02)
    assert "<circle" not in svg  # nothing filled over the target
    assert "<rect" not in zoom_overlay(crop, 0.5, 0.5, 1600, 900, None, 180)


def test_gallery_cards_reference_their_zoom(tiny, tmp_path):
    rep = write_gallery(tiny, tmp_path / "g", GalleryConfig(task="point_vqa", limit=8))
    page = rep.index.read_text()
    cards = re.findall(r'<div class="card".*?</div></div></div>', page)
    assert rep.zooms == len(cards) == rep.rows["point_vqa"] > 0
    reader = CorpusReader(tiny)
    for card in cards:
        image_id = re.search(r'<img src="thumbs/([0-9a-f]+)\.png"', card)[1]
        x, y = (float(v) for v in re.search(r'data-x="([^"]+)" data-y="([^"]+)"', card).groups())
        t = reader.read_images([image_id], ["bytes", "width", "height"])
        w, h = t.column("width")[0].as_py(), t.column("height")[0].as_py()
        crop = zoom_crop(x, y, w, h)
        assert f'data-crop="{crop.x0},{crop.y0},{crop.side}"' in card
        name = f"zooms/{image_id}_{crop.x0}_{crop.y0}_{crop.side}.png"
        th = int(re.search(r'<img src="thumbs/[^"]+" width="\d+" height="(\d+)"', card)[1])
        assert f'<img src="{name}" width="{th}" height="{th}"' in card  # shown at the thumbnail's height
        full = np.asarray(decode(t.column("bytes")[0].as_py(), w, h))
        zoom = np.asarray(Image.open(Path(tmp_path / "g" / name)).convert("RGB"))
        assert (zoom == full[crop.y0:crop.y0 + crop.side, crop.x0:crop.x0 + crop.side]).all()
