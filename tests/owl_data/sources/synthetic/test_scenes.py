"""Tests of the synthetic Cityscapes-layout scenes and of reading them back."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.helpers.labels import name2label
from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from PIL import Image, ImageDraw
from scipy import ndimage

from owl_data.build.driver import SourceSpec, run_build
from owl_data.build.config import BuildConfig, load_build_config
from owl_data.generators.scene_facts import rgb_colour_name
from owl_data.corpus.layout_prior import description_pairs, fit_layout_prior
from owl_data.records import Reject, Scene
from owl_data.sources import SourceOptions
from owl_data.sources.cityscapes import read_scenes as read
from owl_data.sources.synthetic.scenes import (
    CAR_COLOURS,
    CITIES,
    CLOTHES,
    DEFAULT_SOURCE_NAME,
    DefaultScenes,
    write_default_scenes,
)
from owl_data.sources.synthetic.layout import MAX_CARS
from owl_data.sources.synthetic.tasks import CAR_COLOUR_NAMES, CLOTHES_NAMES

CATEGORIES = ("road", "sidewalk", "building", "vegetation", "sky", "car", "person", "traffic light",
              "traffic sign", "pole")
INSTANCE_CATEGORIES = ("car", "person", "traffic light", "traffic sign", "pole")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_default_scenes(tmp_path_factory.mktemp("synthetic") / "cityscapes", seed=0)


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    """More frames of the same drawing, for properties of the distribution of layouts."""
    return write_default_scenes(tmp_path_factory.mktemp("many") / "cityscapes", seed=0, train=20, val=4)


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


def _present(lab: Path) -> set[str]:
    ids = set(np.unique(np.array(Image.open(lab))).tolist())
    return {name for name in CATEGORIES if name2label[name].id in ids}


def test_layout_two_cities_two_splits(root):
    frames = _frames(root)
    cities = {(f[0].parent.parent.name, f[0].parent.name) for f in frames}
    assert cities == {("train", "synthville"), ("val", "drawburg")}
    assert CITIES == (("train", "synthville"), ("val", "drawburg"))
    assert len(frames) == 3 + 2  # the DefaultScenes defaults
    assert DEFAULT_SOURCE_NAME == "cityscapes"
    for img, lab, inst, poly in frames:
        assert lab.is_file() and inst.is_file() and poly.is_file()
        with Image.open(img) as im:
            assert im.mode == "RGB" and im.size == (512, 256)


def test_instance_ids_are_uint16(many):
    has_car = has_person = False
    for _, lab, inst, _ in _frames(many):
        a = np.array(Image.open(inst))
        assert a.dtype == np.uint16
        has_car |= bool(((a >= 26000) & (a < 27000)).any())
        has_person |= bool(((a >= 24000) & (a < 25000)).any())
        labels = np.array(Image.open(lab))
        assert labels.dtype == np.uint8
        assert np.array_equal(labels, np.where(a < 1000, a, a // 1000))
    assert has_car and has_person


def test_every_category_drawn_but_not_in_every_scene(many):
    present = [_present(lab) for _, lab, _, _ in _frames(many)]
    assert set().union(*present) == set(CATEGORIES)
    for name in INSTANCE_CATEGORIES:  # each object category is sometimes absent
        assert any(name not in p for p in present), name
    assert len({frozenset(p) for p in present}) >= 4  # scenes differ in what they hold


def _boxes(root: Path, label: str) -> list[tuple[float, float, float, float]]:
    """Normalised (cx, cy, height, bottom) of the visible instances (or 8-connected parts) of ``label``."""
    out = []
    lid = name2label[label].id
    for _, lab, inst, _ in _frames(root):
        ids = np.array(Image.open(inst))
        H, W = ids.shape
        if name2label[label].hasInstances:
            masks = [ids == v for v in np.unique(ids).tolist() if v // 1000 == lid]
        else:
            parts, n = ndimage.label(ids == lid, structure=np.ones((3, 3), bool))
            masks = [parts == k + 1 for k in range(n)]
        for m in masks:
            rows, cols = np.nonzero(m)
            out.append(((cols.min() + cols.max() + 1) / 2 / W, (rows.min() + rows.max() + 1) / 2 / H,
                        (rows.max() + 1 - rows.min()) / H, (rows.max() + 1) / H))
    return out


def test_categories_at_varied_positions_and_scales(many):
    for label in ("car", "person", "pole"):
        b = np.asarray(_boxes(many, label))
        assert len(b) >= 8, label
        assert b[:, 0].min() < 0.3 and b[:, 0].max() > 0.7, (label, b[:, 0])  # left and right in the frame
        assert b[:, 3].max() - b[:, 3].min() > 0.3, (label, b[:, 3])          # ground contact at many heights
        assert b[:, 2].max() > 3 * b[:, 2].min(), (label, b[:, 2])            # near and far sizes
    # the horizon moves: the lowest sky row differs between frames by a good part of the frame
    lows = []
    for _, lab, _, _ in _frames(many):
        rows = np.nonzero((np.array(Image.open(lab)) == name2label["sky"].id).any(axis=1))[0]
        if rows.size:
            lows.append(rows.max() / 256)
    assert max(lows) - min(lows) > 0.25, lows


def test_farther_objects_are_drawn_smaller(many):
    # perspective: within a frame (one horizon), of two people or two cars the one standing
    # lower in the frame (nearer) is drawn taller, unless their own heights differ more
    agree = total = 0
    for _, _, _, poly in _frames(many):
        objs = json.loads(poly.read_text())["objects"]
        for label in ("person", "car"):
            shapes = [(max(p[1] for p in o["polygon"]), max(p[1] for p in o["polygon"]) - min(p[1] for p in o["polygon"]))
                      for o in objs if o["label"] == label]
            for (b1, h1), (b2, h2) in itertools.combinations(shapes, 2):
                if abs(b1 - b2) > 0.1 * 256:
                    total += 1
                    agree += (b1 - b2) * (h1 - h2) > 0
    assert total >= 10 and agree >= 0.9 * total, (agree, total)


def test_maps_equal_official_conversion_of_polygons(many):
    # the gtFine maps are exactly what cityscapesscripts draws from the polygons file
    for _, lab, inst, poly in _frames(many):
        ann = Annotation()
        ann.fromJsonFile(str(poly))
        assert (ann.imgWidth, ann.imgHeight) == (512, 256)
        assert np.array_equal(np.array(createInstanceImage(ann, "ids")), np.array(Image.open(inst)).astype(np.int32))
        assert np.array_equal(np.array(createLabelImage(ann, "ids")), np.array(Image.open(lab)))


def _full_mask(doc: dict, obj: dict) -> np.ndarray:
    img = Image.new("L", (doc["imgWidth"], doc["imgHeight"]), 0)
    ImageDraw.Draw(img).polygon([tuple(p) for p in obj["polygon"]], fill=1)
    return np.array(img, dtype=bool)


def test_occlusion_makes_visible_smaller_than_full(many):
    car_behind_car = person_before_car = 0
    for _, _, inst, poly in _frames(many):
        ids = np.array(Image.open(inst))
        doc = json.loads(poly.read_text())
        cars = [o for o in doc["objects"] if o["label"] == "car"]   # k-th car drawn = 26000 + k
        people = [o for o in doc["objects"] if o["label"] == "person"]
        for k, obj in enumerate(cars):
            full = _full_mask(doc, obj)
            visible = ids == 26000 + k
            assert visible.any()                        # a car no pixel shows is not drawn
            assert not (visible & ~full).any()          # visible part lies inside the drawn shape
            hidden = full & ~visible
            car_behind_car += bool(((ids[hidden] >= 26000) & (ids[hidden] < 27000)).any())
            person_before_car += bool(((ids[hidden] >= 24000) & (ids[hidden] < 25000)).any())
        for k, _ in enumerate(people):
            assert (ids == 24000 + k).any()
    assert car_behind_car >= 2 and person_before_car >= 1, (car_behind_car, person_before_car)


def test_car_pixels_carry_body_colour(many):
    frames_with_cars = 0
    for img, _, inst, _ in _frames(many):
        rgb = np.array(Image.open(img)).astype(int)
        ids = np.array(Image.open(inst))
        medians = [tuple(np.median(rgb[ids == v], axis=0)) for v in np.unique(ids) if 26000 <= v < 27000
                   and (ids == v).sum() >= 100]
        frames_with_cars += len(medians) >= 2
        car_label_colour = np.array(name2label["car"].color)
        assert len(set(medians)) == len(medians)        # distinct colours within a frame
        assert all(np.abs(np.array(m) - car_label_colour).sum() > 60 for m in medians)
    assert frames_with_cars >= 3


def test_palette_names_agree_with_the_colour_namer():
    # the names owl_data.sources.synthetic.palette gives the paints are what the description generator reads
    assert len(CAR_COLOURS) == len(CAR_COLOUR_NAMES) == len(set(CAR_COLOURS))
    assert len(CLOTHES) == len(CLOTHES_NAMES) == len(set(CLOTHES))
    assert [rgb_colour_name(c) for c in CAR_COLOURS] == list(CAR_COLOUR_NAMES)
    assert MAX_CARS <= len(CAR_COLOURS)


def _digests(r: Path) -> dict[str, str]:
    return {p.relative_to(r).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(r.rglob("*")) if p.is_file()}


def test_deterministic_bytes(tmp_path):
    a = _digests(write_default_scenes(tmp_path / "a", seed=0))
    b = _digests(write_default_scenes(tmp_path / "b", seed=0))
    c = _digests(write_default_scenes(tmp_path / "c", seed=1))
    assert a == b and len(a) == 5 * 4
    assert a != c


def test_settings_change_what_is_drawn(tmp_path):
    base = _digests(write_default_scenes(tmp_path / "base", seed=0))
    more = _digests(write_default_scenes(tmp_path / "more", seed=0, train=4, val=3))
    assert len(more) == 7 * 4
    assert {k: v for k, v in more.items() if k in base} == base  # a larger count adds frames, keeps the others
    small = write_default_scenes(tmp_path / "small", seed=0, train=1, val=1, width=320, height=200)
    imgs = sorted(small.glob("leftImg8bit/*/*/*.png"))
    assert len(imgs) == 2
    for img in imgs:
        with Image.open(img) as im:
            assert im.size == (320, 200)
    doc = json.loads(next(small.glob("gtFine/train/*/*_polygons.json")).read_text())
    assert (doc["imgWidth"], doc["imgHeight"]) == (320, 200)
    names = {DefaultScenes().cache_name(0), DefaultScenes().cache_name(1), DefaultScenes(train=4).cache_name(0),
             DefaultScenes(val=4).cache_name(0), DefaultScenes(width=320).cache_name(0),
             DefaultScenes(height=200).cache_name(0)}
    assert len(names) == 6  # every setting that changes the drawing changes the cache folder


@pytest.mark.parametrize(("field", "value"), [("train", 0), ("val", 0), ("train", 2.5), ("val", True),
                                              ("width", 64), ("height", 10_000), ("width", "512")])
def test_scene_settings_are_validated(field, value):
    with pytest.raises(ValueError, match=f"default_scenes.{field}="):
        DefaultScenes(**{field: value})
    with pytest.raises(ValueError, match=f"default_scenes.{field}="):
        BuildConfig.from_dict({"default_scenes": {field: value}})
    with pytest.raises(ValueError, match=f"default_scenes.{field}="):
        write_default_scenes(Path("/nonexistent/never-written"), **{field: value})


def test_scene_settings_in_build_config(tmp_path):
    p = tmp_path / "b.yaml"
    p.write_text("build:\n  default_scenes: {train: 80, val: 20}\n")
    cfg = load_build_config(p)
    assert cfg.default_scenes == DefaultScenes(train=80, val=20, width=512, height=256)
    assert cfg.content_dict()["default_scenes"] == {"train": 80, "val": 20, "width": 512, "height": 256}
    p.write_text("build:\n  default_scenes: {trian: 80}\n")
    with pytest.raises(ValueError, match="trian"):
        load_build_config(p)
    p.write_text("build:\n  default_scenes: 80\n")
    with pytest.raises(ValueError, match="default_scenes=80"):
        load_build_config(p)


def test_reader_reads_synthetic_without_rejects(many):
    records = list(read(str(many), SourceOptions(name=DEFAULT_SOURCE_NAME, synthetic=True)))
    assert not [r for r in records if isinstance(r, Reject)]
    scenes = [r for r in records if isinstance(r, Scene)]
    assert len(scenes) == len(_frames(many))
    assert {(s.ref.split, s.ref.group) for s in scenes} == {("train", "synthville"), ("val", "drawburg")}
    seen: set[str] = set()
    for s in scenes:
        cats = {i.category for i in s.instances}
        assert cats <= set(CATEGORIES)
        seen |= cats
        assert len(s.items) == sum(i.kind == "thing" for i in s.instances)
        assert s.semantic.shape == (256, 512)
    assert seen == set(CATEGORIES)


# The layout prior (owl_data.corpus.layout_prior: a 15-NN vote from the point's (x, y) to its category,
# fitted on train, scored on val) of a 12 train / 6 val build, measured: the fixed layout drawn
# before (sky on top, cars in two rows, every category in every frame) gave 0.648 with seed 0
# (0.65-0.75 over seeds 0-3; 0.76 at 80 train / 20 val); the randomised layout gives 0.221 with
# seed 0 (0.16-0.39 over seeds 0-3, whose val sets hold only 77-105 points; 0.24-0.28 at 80/20,
# where the train majority class scores 0.19-0.23).
LAYOUT_PRIOR_BOUND = 0.35  # the measured 0.221 plus room for small changes of the drawing; the old layout fails it


def test_layout_prior_of_a_small_build_is_low(tmp_path):
    root = write_default_scenes(tmp_path / "scenes", seed=0, train=12, val=6)
    out = tmp_path / "corpus"
    run_build([SourceSpec("cityscapes", str(root), synthetic=True)], out, BuildConfig())

    def rows(split: str) -> list[dict]:
        return [r for f in sorted((out / "point_vqa" / split).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]

    prior = fit_layout_prior(rows("train"))
    xy, cats = description_pairs(rows("val"))
    assert prior.n >= 100 and len(cats) >= 60
    acc = prior.accuracy(xy, cats)
    assert acc <= LAYOUT_PRIOR_BOUND, acc


def test_the_default_scene_cache_is_drawn_whole_and_shared_by_concurrent_builds(tmp_path):
    """Two builds drawing the embedded default at once used to write the same files in place (one
    read a truncated PNG). The cache is now drawn in a private folder and renamed into place."""
    import hashlib
    from concurrent.futures import ProcessPoolExecutor

    from owl_data.sources.synthetic.scenes import COMPLETE, cached_default_sources, write_default_sources

    def digest(root):
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file() and p.name != COMPLETE}

    ref = tmp_path / "ref"
    write_default_sources(ref, seed=3, train=2, val=1)
    cache = tmp_path / "cache" / "default-scenes-x"
    with ProcessPoolExecutor(3) as pool:
        got = list(pool.map(_draw_cached, [str(cache)] * 3))
    specs = cached_default_sources(cache, seed=3, train=2, val=1)
    assert all(g == [(n, s) for n, s in specs] for g in got)
    assert specs[0] == ("cityscapes", str(cache)) and (cache / COMPLETE).is_file()
    assert digest(cache) == digest(ref)  # the same bytes as a direct drawing
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no private folder left
    # a complete cache is used as it is; an incomplete one (an older in-place drawing) is replaced
    (cache / "leftImg8bit" / "marker").write_text("kept")
    cached_default_sources(cache, seed=3, train=2, val=1)
    assert (cache / "leftImg8bit" / "marker").is_file()
    (cache / COMPLETE).unlink()
    next(cache.rglob("*_leftImg8bit.png")).write_bytes(b"truncated")
    cached_default_sources(cache, seed=3, train=2, val=1)
    assert digest(cache) == digest(ref) and not (cache / "leftImg8bit" / "marker").exists()


def _draw_cached(cache: str):
    from owl_data.sources.synthetic.scenes import cached_default_sources

    return cached_default_sources(Path(cache), seed=3, train=2, val=1)
