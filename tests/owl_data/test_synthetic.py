"""Tests of the synthetic Cityscapes-layout scenes and of reading them back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.helpers.labels import name2label
from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from PIL import Image, ImageDraw

from owl_data.records import Reject, Scene
from owl_data.sources import SourceOptions
from owl_data.sources.cityscapes import read
from owl_data.synthetic import DEFAULT_SOURCE_NAME, write_default_scenes

REQUIRED = ("road", "sidewalk", "building", "vegetation", "sky", "car", "person", "traffic light", "pole")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_default_scenes(tmp_path_factory.mktemp("synthetic") / "cityscapes", seed=0)


def _frames(root: Path) -> list[tuple[Path, Path, Path, Path]]:
    """(image, labelIds, instanceIds, polygons) of every frame, sorted."""
    out = []
    for img in sorted(root.glob("leftImg8bit/*/*/*_leftImg8bit.png")):
        rel = img.relative_to(root / "leftImg8bit")
        stem = str(rel.parent / rel.name[: -len("_leftImg8bit.png")])
        gt = root / "gtFine"
        out.append((img, gt / f"{stem}_gtFine_labelIds.png", gt / f"{stem}_gtFine_instanceIds.png",
                    gt / f"{stem}_gtFine_polygons.json"))
    return out


def test_layout_two_cities_two_splits(root):
    frames = _frames(root)
    cities = {(f[0].parent.parent.name, f[0].parent.name) for f in frames}
    assert cities == {("train", "synthville"), ("val", "drawburg")}
    assert 4 <= len(frames) <= 6
    assert DEFAULT_SOURCE_NAME == "cityscapes"
    for img, lab, inst, poly in frames:
        assert lab.is_file() and inst.is_file() and poly.is_file()
        with Image.open(img) as im:
            assert im.mode == "RGB" and im.size == (512, 256)


def test_instance_ids_are_uint16(root):
    for _, lab, inst, _ in _frames(root):
        a = np.array(Image.open(inst))
        assert a.dtype == np.uint16
        assert a.max() >= 26000 and (a >= 24000).any()
        labels = np.array(Image.open(lab))
        assert labels.dtype == np.uint8
        assert np.array_equal(labels, np.where(a < 1000, a, a // 1000))


def test_required_classes_in_every_scene(root):
    for _, lab, _, poly in _frames(root):
        present = set(np.unique(np.array(Image.open(lab))).tolist())
        for name in REQUIRED:
            assert name2label[name].id in present, name
        objs = json.loads(poly.read_text())["objects"]
        assert sum(o["label"] == "car" for o in objs) >= 3
        assert sum(o["label"] == "person" for o in objs) >= 3


def test_maps_equal_official_conversion_of_polygons(root):
    # the gtFine maps are exactly what cityscapesscripts draws from the polygons file
    for _, lab, inst, poly in _frames(root):
        ann = Annotation()
        ann.fromJsonFile(str(poly))
        assert (ann.imgWidth, ann.imgHeight) == (512, 256)
        assert np.array_equal(np.array(createInstanceImage(ann, "ids")), np.array(Image.open(inst)).astype(np.int32))
        assert np.array_equal(np.array(createLabelImage(ann, "ids")), np.array(Image.open(lab)))


def test_occlusion_makes_visible_smaller_than_full(root):
    for _, _, inst, poly in _frames(root):
        occluded_cars = 0
        ids = np.array(Image.open(inst))
        doc = json.loads(poly.read_text())
        cars = [o for o in doc["objects"] if o["label"] == "car"]   # k-th car drawn = 26000 + k
        for k, obj in enumerate(cars):
            full_img = Image.new("L", (doc["imgWidth"], doc["imgHeight"]), 0)
            ImageDraw.Draw(full_img).polygon([tuple(p) for p in obj["polygon"]], fill=1)
            full = np.array(full_img, dtype=bool)
            visible = ids == 26000 + k
            assert visible.any()
            assert not (visible & ~full).any()          # visible part lies inside the drawn shape
            if visible.sum() < full.sum():
                occluded_cars += 1
        assert occluded_cars >= 1, poly.name             # at least one partly hidden car per scene


def test_car_pixels_carry_body_colour(root):
    img, _, inst, _ = _frames(root)[0]
    rgb = np.array(Image.open(img)).astype(int)
    ids = np.array(Image.open(inst))
    medians = [tuple(np.median(rgb[ids == v], axis=0)) for v in np.unique(ids) if 26000 <= v < 27000]
    car_label_colour = np.array(name2label["car"].color)
    assert len(set(medians)) == len(medians)            # distinct colours
    assert all(np.abs(np.array(m) - car_label_colour).sum() > 60 for m in medians)


def test_deterministic_bytes(tmp_path):
    def digests(r: Path) -> dict[str, str]:
        return {p.relative_to(r).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(r.rglob("*")) if p.is_file()}

    a = digests(write_default_scenes(tmp_path / "a", seed=0))
    b = digests(write_default_scenes(tmp_path / "b", seed=0))
    c = digests(write_default_scenes(tmp_path / "c", seed=1))
    assert a == b and len(a) >= 16
    assert a != c


def test_reader_reads_synthetic_without_rejects(root):
    records = list(read(str(root), SourceOptions(name=DEFAULT_SOURCE_NAME, synthetic=True)))
    assert not [r for r in records if isinstance(r, Reject)]
    scenes = [r for r in records if isinstance(r, Scene)]
    assert len(scenes) == len(_frames(root))
    assert {(s.ref.split, s.ref.group) for s in scenes} == {("train", "synthville"), ("val", "drawburg")}
    for s in scenes:
        cats = {i.category for i in s.instances}
        assert set(REQUIRED) <= cats
        assert len(s.items) == sum(i.kind == "thing" for i in s.instances)
        assert s.semantic.shape == (256, 512)
