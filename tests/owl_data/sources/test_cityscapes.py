"""Tests of the Cityscapes reader on the real sample frame and on crafted bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label, name2label
from PIL import Image
from scipy import ndimage

from owl_data.records import MaskArray, Reject, Scene
from owl_data.sources import SourceError, SourceOptions, get_reader
from owl_data.sources.cityscapes import read_scenes as read
from tests.conftest import SHARED_DATA, need_shared_data, split_records as _split

# ../shared/data next to the repository, resolved (pyproject marker `realdata`)
REAL_ROOT = SHARED_DATA / "cityscapes"
REAL_STEM = "val/frankfurt/frankfurt_000000_000294"
OPTS = SourceOptions(name="cityscapes")


def _full(g: MaskArray, shape: tuple[int, int]) -> np.ndarray:
    """A MaskArray (a crop at its offset) as a full (H, W) mask."""
    x0, y0 = g.offset
    out = np.zeros(shape, bool)
    out[y0:y0 + g.mask.shape[0], x0:x0 + g.mask.shape[1]] = g.mask
    return out


def _real_root() -> Path:
    need_shared_data("cityscapes", "leftImg8bit", f"{REAL_STEM}_leftImg8bit.png")
    return REAL_ROOT




# --- the real frame -------------------------------------------------------------------


@pytest.fixture(scope="module")
def real():
    root = _real_root()
    records = list(read(str(root), OPTS))
    inst = np.array(Image.open(root / "gtFine" / f"{REAL_STEM}_gtFine_instanceIds.png"))
    labels = np.array(Image.open(root / "gtFine" / f"{REAL_STEM}_gtFine_labelIds.png"))
    return records, inst, labels


@pytest.mark.realdata
def test_real_frame_is_one_scene(real):
    records, inst, labels = real
    scenes, rejects = _split(records)
    assert len(scenes) == 1 and rejects == []
    ref = scenes[0].ref
    assert ref.source == "cityscapes"
    assert ref.source_path == f"leftImg8bit/{REAL_STEM}_leftImg8bit.png"
    # the label maps state the size (the image's, no EXIF): declared, in the default frame
    assert ref.group == "frankfurt" and ref.split == "val" and ref.declared_size == (256, 128) and ref.frame == "upright"
    assert ref.path.is_absolute() and ref.path.is_file()
    assert scenes[0].semantic.dtype == np.uint8
    assert np.array_equal(scenes[0].semantic, labels)


@pytest.mark.realdata
def test_real_thing_instances_match_instance_png(real):
    records, inst, _ = real
    assert inst.dtype == np.uint16
    scene = _split(records)[0][0]
    things = {i.instance: i for i in scene.instances if i.kind == "thing" and ":" not in i.instance}
    expected = {str(int(v)) for v in np.unique(inst) if v >= 1000}
    assert set(things) == expected
    assert {"24000", "26000"} <= expected
    for key, ins in things.items():
        assert isinstance(ins.geometry, MaskArray)
        assert ins.geometry.mask.dtype == bool
        assert np.array_equal(_full(ins.geometry, inst.shape), inst == int(key))
        assert ins.category == id2label[int(key) // 1000].name
        assert ins.item == f"{scene.ref.source_path}#{key}"
    assert things["26000"].category == "car"
    assert things["24000"].category == "person"


@pytest.mark.realdata
def test_real_components_match_scipy(real):
    records, inst, _ = real
    scene = _split(records)[0][0]
    for name in ("pole", "traffic sign", "traffic light"):
        cid = name2label[name].id
        comps, n = ndimage.label(inst == cid, structure=np.ones((3, 3)))
        got = sorted((i for i in scene.instances if i.category == name), key=lambda i: int(i.instance.split(":")[1]))
        assert len(got) == n
        for k, ins in enumerate(got):
            assert ins.instance == f"{cid}:{k}" and ins.kind == "thing"
            assert ins.item == f"{scene.ref.source_path}#{cid}:{k}"
            assert np.array_equal(_full(ins.geometry, inst.shape), comps == k + 1)
    assert sum(i.category == "pole" for i in scene.instances) == 17  # counted in the sample
    assert sum(i.category == "traffic sign" for i in scene.instances) == 7


@pytest.mark.realdata
def test_real_stuff_and_items(real):
    records, inst, _ = real
    scene = _split(records)[0][0]
    stuff = {i.category: i for i in scene.instances if i.kind == "stuff"}
    assert set(stuff) == {"road", "sidewalk", "building", "vegetation", "sky"}
    for name, ins in stuff.items():
        assert ins.item is None and ins.instance == str(name2label[name].id)
        assert np.array_equal(_full(ins.geometry, inst.shape), inst == name2label[name].id)
    assert scene.items == [i.item for i in scene.instances if i.item is not None]
    assert len(set(scene.items)) == len(scene.items)


def test_registry_finds_reader():
    from owl_data.sources import cityscapes

    assert get_reader("cityscapes") is cityscapes.read


# --- crafted inputs -------------------------------------------------------------------


def _frame(root: Path, inst: np.ndarray, *, split="train", city="testcity", stem="testcity_000000_000000",
           image_size=None, labels=True, polygons=None) -> str:
    h, w = inst.shape
    img_dir = root / "leftImg8bit" / split / city
    gt_dir = root / "gtFine" / split / city
    img_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    iw, ih = image_size or (w, h)
    Image.fromarray(np.full((ih, iw, 3), 128, np.uint8)).save(img_dir / f"{stem}_leftImg8bit.png")
    Image.fromarray(inst.astype(np.uint16)).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
    if labels:
        lab = np.where(inst < 1000, inst, inst // 1000).astype(np.uint8)
        Image.fromarray(lab).save(gt_dir / f"{stem}_gtFine_labelIds.png")
    if polygons is not None:
        (gt_dir / f"{stem}_gtFine_polygons.json").write_text(polygons)
    return f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png"


def _street(h=16, w=24) -> np.ndarray:
    inst = np.full((h, w), 7, np.uint16)          # road
    inst[:4] = 23                                  # sky
    inst[5:9, 2:8] = 26000                         # car 0
    inst[5:9, 8:12] = 26001                        # car 1, touching car 0
    inst[4:12, 15] = 17                            # a pole
    inst[4:12, 20] = 17                            # another pole
    inst[2:4, 14:17] = 19                          # traffic light
    return inst


def test_crafted_frame(tmp_path):
    sp = _frame(tmp_path, _street(), labels=False)
    scenes, rejects = _split(list(read(str(tmp_path), OPTS)))
    assert rejects == []
    (scene,) = scenes
    got = {(i.instance, i.category, i.kind) for i in scene.instances}
    assert got == {("26000", "car", "thing"), ("26001", "car", "thing"), ("17:0", "pole", "thing"),
                   ("17:1", "pole", "thing"), ("19:0", "traffic light", "thing"),
                   ("7", "road", "stuff"), ("23", "sky", "stuff")}
    assert sorted(scene.items) == sorted(f"{sp}#{k}" for k in ("26000", "26001", "17:0", "17:1", "19:0"))
    # labelIds absent: derived from instanceIds
    assert scene.semantic.dtype == np.uint8
    assert scene.semantic[6, 3] == 26 and scene.semantic[0, 0] == 23 and scene.semantic[5, 15] == 17
    assert scene.ref.split == "train" and scene.ref.group == "testcity"


def test_missing_annotation(tmp_path):
    sp = _frame(tmp_path, _street())
    (tmp_path / "gtFine/train/testcity/testcity_000000_000000_gtFine_instanceIds.png").unlink()
    records = list(read(str(tmp_path), OPTS))
    assert records == [Reject("cityscapes", sp, "read", "missing_annotation", records[0].detail)]


def test_no_gtfine_partner_at_all(tmp_path):
    _frame(tmp_path, _street())
    sp2 = _frame(tmp_path, _street(), stem="testcity_000000_000001")
    for p in (tmp_path / "gtFine/train/testcity").glob("testcity_000000_000001_*"):
        p.unlink()
    scenes, rejects = _split(list(read(str(tmp_path), OPTS)))
    assert len(scenes) == 1
    assert [(r.item, r.reason) for r in rejects] == [(sp2, "missing_annotation")]


def test_corrupt_instance_png(tmp_path):
    sp = _frame(tmp_path, _street())
    (tmp_path / "gtFine/train/testcity/testcity_000000_000000_gtFine_instanceIds.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (r,) = list(read(str(tmp_path), OPTS))
    assert isinstance(r, Reject) and (r.item, r.stage, r.reason) == (sp, "read", "unreadable_annotation")


def test_truncated_instance_png(tmp_path):
    sp = _frame(tmp_path, _street())
    p = tmp_path / "gtFine/train/testcity/testcity_000000_000000_gtFine_instanceIds.png"
    p.write_bytes(p.read_bytes()[:60])
    (r,) = list(read(str(tmp_path), OPTS))
    assert (r.item, r.reason) == (sp, "unreadable_annotation")


def test_size_mismatch(tmp_path):
    sp = _frame(tmp_path, _street(), image_size=(48, 32))
    (r,) = list(read(str(tmp_path), OPTS))
    assert isinstance(r, Reject) and (r.item, r.reason) == (sp, "size_mismatch")
    assert "24x16" in r.detail and "48x32" in r.detail


def test_polygons_json_size_mismatch_and_corrupt(tmp_path):
    _frame(tmp_path / "a", _street(), polygons=json.dumps({"imgHeight": 16, "imgWidth": 24, "objects": []}))
    assert all(isinstance(r, Scene) for r in read(str(tmp_path / "a"), OPTS))
    _frame(tmp_path / "b", _street(), polygons=json.dumps({"imgHeight": 99, "imgWidth": 24, "objects": []}))
    assert [r.reason for r in read(str(tmp_path / "b"), OPTS)] == ["size_mismatch"]
    _frame(tmp_path / "c", _street(), polygons="{not json")
    assert [r.reason for r in read(str(tmp_path / "c"), OPTS)] == ["unreadable_annotation"]


def test_group_pixels_rejected(tmp_path):
    inst = np.full((8, 8), 7, np.uint16)
    inst[2:5, 2:6] = 26                            # a car group: no instance id
    sp = _frame(tmp_path, inst)
    scenes, rejects = _split(list(read(str(tmp_path), OPTS)))
    (scene,) = scenes
    assert [i.category for i in scene.instances] == ["road", "car"] and scene.items == []
    crowd = scene.instances[1]
    assert crowd.crowd and crowd.item is None and crowd.instance == "group:26"
    assert np.array_equal(_full(crowd.geometry, inst.shape), inst == 26)  # context: blocks counting cars
    assert [(r.item, r.stage, r.reason) for r in rejects] == [(f"{sp}#group:26", "read", "group_label")]


def test_unknown_instance_class_rejected(tmp_path):
    inst = np.full((8, 8), 7, np.uint16)
    inst[1:3, 1:3] = 11000                          # building has no instances
    inst[4:6, 4:6] = 26000
    sp = _frame(tmp_path, inst)
    scenes, rejects = _split(list(read(str(tmp_path), OPTS)))
    assert scenes[0].items == [f"{sp}#26000"]
    assert [(r.item, r.reason) for r in rejects] == [(f"{sp}#11000", "unknown_label")]


def test_deterministic_order(tmp_path):
    for split, city in (("val", "b"), ("train", "z"), ("train", "a")):
        for k in (1, 0):
            _frame(tmp_path, _street(), split=split, city=city, stem=f"{city}_000000_00000{k}")
    paths = [r.ref.source_path for r in read(str(tmp_path), OPTS)]
    assert paths == sorted(paths) and len(paths) == 6


@pytest.mark.parametrize("make", ["missing", "no_left", "empty_left"])
def test_bad_root_raises(tmp_path, make):
    root = tmp_path / "root"
    if make != "missing":
        root.mkdir()
    if make == "empty_left":
        (root / "leftImg8bit" / "train").mkdir(parents=True)
    with pytest.raises(SourceError, match="cityscapes"):
        read(str(root), OPTS)


def test_symlink_out_of_root_rejected(tmp_path):
    outside = tmp_path / "outside.png"
    Image.fromarray(np.zeros((16, 24, 3), np.uint8)).save(outside)
    root = tmp_path / "root"
    sp = _frame(root, _street())
    img = root / sp
    img.unlink()
    img.symlink_to(outside)
    (r,) = list(read(str(root), OPTS))
    assert isinstance(r, Reject) and (r.item, r.reason) == (sp, "path_outside_source")


def test_masks_are_crops_of_their_boxes_and_the_worker_decodes(tmp_path):
    inst = np.full((8, 10), 7, np.uint16)           # road everywhere: its box starts at (0, 0)
    inst[2:5, 3:6] = 26001                         # a car: columns 3..5, rows 2..4
    inst[6, 1] = inst[7, 2] = 17                   # one pole (8-connected) at the bottom left
    inst[1, 8] = 17                                # a second pole, top right
    inst[0:2, 0] = 20                              # a traffic sign in the top-left corner
    _frame(tmp_path, inst)
    from owl_data.records import DeferredScene
    from owl_data.sources import cityscapes

    (deferred,) = list(cityscapes.read(str(tmp_path), OPTS))  # headers only: nothing decoded yet
    assert isinstance(deferred, DeferredScene) and deferred.loader == cityscapes.LOADER
    import pickle
    assert len(pickle.dumps(deferred)) < 2000
    scene = _split(list(read(str(tmp_path), OPTS)))[0][0]
    by = {i.instance: i.geometry for i in scene.instances}
    assert (by["26001"].offset, by["26001"].mask.shape) == ((3, 2), (3, 3)) and by["26001"].mask.all()
    assert (by["17:0"].offset, by["17:0"].mask.shape) == ((8, 1), (1, 1))   # raster order: row 1 first
    assert (by["17:1"].offset, by["17:1"].mask.shape) == ((1, 6), (2, 2))
    assert np.array_equal(by["17:1"].mask, [[True, False], [False, True]])
    assert by["7"].offset == (0, 0) and np.array_equal(by["7"].mask, inst == 7)  # spans the frame
    # a box at the top-left corner is a crop at (0, 0), not a full frame
    assert (by["20:0"].offset, by["20:0"].mask.shape) == ((0, 0), (2, 1)) and by["20:0"].mask.all()


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.int64, np.uint8])
def test_renumber_equals_numpy_unique(dtype):
    from owl_data.ingest.crops import renumber as _renumber

    rng = np.random.default_rng(3)
    inst = rng.choice(np.array([0, 7, 24, 26001, 26002, 33000], np.int64) % np.iinfo(dtype).max, size=(9, 13))
    inst = inst.astype(dtype)
    uniq, inverse = np.unique(inst, return_inverse=True)
    got_u, got_l = _renumber(inst)
    assert np.array_equal(got_u, uniq) and np.array_equal(got_l, inverse.reshape(inst.shape) + 1)
    neg = inst.astype(np.int64) - 5  # negative values take np.unique's path
    u2, l2 = _renumber(neg)
    assert np.array_equal(u2, np.unique(neg)) and l2.min() == 1 and l2.max() == u2.size
