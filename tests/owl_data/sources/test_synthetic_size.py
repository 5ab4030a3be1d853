"""The frame size of the drawn scenes (``width``/``height`` of ``write_default_scenes`` and
``DefaultScenes``): the files, the masks and the layout follow it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.helpers.labels import name2label
from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from PIL import Image

from owl_data.sources.synthetic.scenes import DefaultScenes, write_default_scenes

STUFF_IDS = [name2label[n].id for n in ("road", "sidewalk", "building", "sky")]


def _maps(root, split_city="val/drawburg", frame=0):
    stem = f"{split_city.split('/')[1]}_000000_{frame:06d}"
    gt = root / "gtFine" / split_city
    return (root / "leftImg8bit" / split_city / f"{stem}_leftImg8bit.png", gt / f"{stem}_gtFine_labelIds.png",
            gt / f"{stem}_gtFine_instanceIds.png", gt / f"{stem}_gtFine_polygons.json")


@pytest.mark.parametrize(("width", "height"), [(1024, 512), (640, 200)])
def test_files_and_masks_have_the_size(tmp_path, width, height):
    root = write_default_scenes(tmp_path / "s", seed=3, train=1, val=2, width=width, height=height)
    for split_city, frame in (("train/synthville", 0), ("val/drawburg", 0), ("val/drawburg", 1)):
        photo, lab, inst, poly = _maps(root, split_city, frame)
        with Image.open(photo) as im:
            assert (im.size, im.mode) == ((width, height), "RGB")
        labels, ids = np.array(Image.open(lab)), np.array(Image.open(inst))
        assert labels.shape == ids.shape == (height, width) and ids.dtype == np.uint16
        doc = json.loads(poly.read_text())
        assert (doc["imgWidth"], doc["imgHeight"]) == (width, height)
        # the masks are drawn at this size: exactly what cityscapesscripts rasterises from the polygons
        ann = Annotation()
        ann.fromJsonFile(str(poly))
        assert np.array_equal(np.array(createInstanceImage(ann, "ids")), ids.astype(np.int32))
        assert np.array_equal(np.array(createLabelImage(ann, "ids")), labels)
        # the drawing fills the frame: sky in the top row, ground in the bottom row, both full width
        assert (labels[0] == name2label["sky"].id).any() or (labels[0] == name2label["building"].id).any()
        ground = np.isin(labels[-1], [name2label["road"].id, name2label["sidewalk"].id])
        assert ground.any()
        covered = np.nonzero(labels != 0)
        assert covered[1].max() == width - 1 and covered[0].max() == height - 1


def _stuff_agreement(a: np.ndarray, b2: np.ndarray) -> float:
    """Share of the pixels of ``a`` (H, W) equal to the (2H, 2W) map ``b2`` sampled at even rows and
    columns, among those where both hold road, sidewalk, building or sky."""
    b = b2[::2, ::2]
    both = np.isin(a, STUFF_IDS) & np.isin(b, STUFF_IDS)
    return float((a[both] == b[both]).mean())


def test_layout_scales_with_the_size(tmp_path):
    # the camera and the street come from the same draws at any size (layout._view, _backdrop): at
    # twice the size the road, sidewalks, facades and sky cover the same share of the frame, up to
    # rounding; only billboards near the 14-px limit (and what is drawn after them) may differ
    small = write_default_scenes(tmp_path / "a", seed=0, train=8, val=1, width=512, height=256)
    large = write_default_scenes(tmp_path / "b", seed=0, train=8, val=1, width=1024, height=512)
    shares = []
    for frame in range(8):
        a = np.array(Image.open(_maps(small, "train/synthville", frame)[1]))
        b = np.array(Image.open(_maps(large, "train/synthville", frame)[1]))
        shares.append(_stuff_agreement(a, b))
    assert np.median(shares) > 0.98, shares
    # a drawing that kept the default camera (same pixels, larger canvas) agrees far less
    a = np.array(Image.open(_maps(small, "train/synthville", 0)[1]))
    canvas = np.zeros((512, 1024), dtype=np.uint8)
    canvas[:256, :512] = a
    assert _stuff_agreement(a, canvas) < 0.9


def test_default_size_is_unchanged():
    # the default build's frames (and so its fingerprint) are 512x256
    assert (DefaultScenes().width, DefaultScenes().height) == (512, 256)
    assert DefaultScenes(width=2048, height=1024).cache_name(0).endswith("-2048x1024")
