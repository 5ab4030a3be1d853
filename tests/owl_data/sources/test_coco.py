"""Tests for the COCO instances reader (owl_data.sources.coco)."""

from __future__ import annotations

import builtins
import json

import pytest
from PIL import Image

from owl_data.build.driver import run_build
from owl_data.build.config import BuildConfig
from owl_data.corpus.validate import validate_corpus
from owl_data.records import RLE, Box, Polygons
from owl_data.sources import SourceError, SourceOptions, get_reader
from owl_data.sources.coco import parse_spec, read
from tests.conftest import need_shared_data
from tests.conftest import split_records as _split
from tests.owl_data.helpers import table_rows

OPTS = SourceOptions(name="coco")






@pytest.mark.realdata
def test_real_sample():
    root = need_shared_data("coco_instances")
    records = list(read(f"{root}:{root / 'annotations.json'}", OPTS))
    scenes, rejects = _split(records)
    assert rejects == []
    assert len(scenes) == 3
    items = [i for s in scenes for i in s.items]
    assert sorted(items, key=lambda k: int(k[4:])) == [f"ann:{i}" for i in range(12)]
    by_ann = {inst.item: (s, inst) for s in scenes for inst in s.instances}
    scene, car = by_ann["ann:5"]
    assert car.category == "car" and car.instance == "5" and not car.crowd
    assert isinstance(car.geometry, Polygons)
    assert scene.ref.source_path == "JPEGImages/2011_000025.jpg"
    assert scene.ref.group == scene.ref.source_path
    assert scene.ref.declared_size == (500, 375)
    assert scene.ref.path == root / "JPEGImages" / "2011_000025.jpg"
    assert [s.ref.declared_size for s in scenes] == [(500, 338), (500, 375), (500, 375)]
    assert [s.ref.source_path for s in scenes] == [
        "JPEGImages/2011_000003.jpg", "JPEGImages/2011_000025.jpg", "JPEGImages/2011_000006.jpg"
    ]  # image ids 0, 1, 2
    assert {i.category for i in scenes[1].instances} == {"bus", "car"}
    assert all(s.ref.source == "coco" and s.ref.split is None for s in scenes)


@pytest.fixture()
def crafted(tmp_path):
    """A tiny COCO folder: images/{a,b}.png, the JSON beside it; returns a writer."""
    root = tmp_path / "images"
    root.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 6), (10, 20, 30)).save(root / name)
    (tmp_path / "x.jpg").write_bytes(b"outside")  # exists, must never be opened

    def write(images, annotations, categories=({"id": 1, "name": "car"},)):
        ann = tmp_path / "annotations.json"
        ann.write_text(json.dumps(
            {"images": list(images), "annotations": list(annotations), "categories": list(categories)}
        ))
        return f"{root}:{ann}"

    return write


def _img(iid, name, w=8, h=6):
    return {"id": iid, "file_name": name, "width": w, "height": h}


def _ann(aid, iid, cid=1, **kw):
    base = {"id": aid, "image_id": iid, "category_id": cid,
            "segmentation": [[1, 1, 6, 1, 6, 5]], "bbox": [1, 1, 5, 4], "iscrowd": 0}
    base.update(kw)
    return base


def test_paths_outside_root_are_rejected_and_never_opened(crafted, monkeypatch):
    spec = crafted(
        [_img(1, "../../x.jpg"), _img(2, "/etc/passwd"), _img(3, "../x.jpg"), _img(4, "a.png")],
        [_ann(10, 1), _ann(11, 1), _ann(20, 2), _ann(30, 3), _ann(40, 4)],
    )
    opened = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    scenes, rejects = _split(list(read(spec, OPTS)))
    assert {r.item: r.reason for r in rejects} == {
        "ann:10": "path_outside_source", "ann:11": "path_outside_source",
        "ann:20": "path_outside_source", "ann:30": "path_outside_source",
    }
    assert [s.ref.source_path for s in scenes] == ["a.png"]
    assert all(o.endswith("annotations.json") for o in opened)


def test_unknown_category_image_missing_and_malformed(crafted):
    spec = crafted(
        [_img(1, "a.png"), _img(2, "gone.png"), _img(3, "b.png", w=None), _img(4, "b.png")],
        [
            _ann(1, 1, cid=99),
            _ann(2, 2),
            _ann(3, 3),
            _ann(4, 7),
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]},
            _ann(6, 4, bbox=None, segmentation=[]),
            _ann(7, 4, segmentation="nope"),
            _ann(8, 4, segmentation=[], bbox=[1, 2, "3", 4]),
            _ann(9, 4, iscrowd="yes"),
            _ann(10, 4),
        ],
    )
    scenes, rejects = _split(list(read(spec, OPTS)))
    assert {r.item: r.reason for r in rejects} == {
        "ann:1": "unknown_category",
        "ann:2": "missing_image",
        "ann:3": "malformed_image_entry",
        "ann:4": "unknown_image",
        "ann:#4": "malformed_annotation",
        "ann:6": "no_geometry",
        "ann:7": "malformed_annotation",
        "ann:8": "malformed_annotation",
        "ann:9": "malformed_annotation",
    }
    assert len(scenes) == 1 and scenes[0].items == ["ann:10"]


def test_rle_and_box_only_geometry(crafted):
    rle = {"size": [6, 8], "counts": [10, 5, 33]}
    spec = crafted(
        [_img(2, "b.png"), _img(1, "a.png"), _img(5, "a.png")],  # image 5: no annotations
        [_ann(1, 2, segmentation=rle, iscrowd=1), _ann(2, 2, segmentation=[], bbox=[1.5, 1, 2, 3]),
         _ann(3, 1, segmentation=None, bbox=[0, 0, 4, 4]), _ann(4, 1)],
    )
    scenes, rejects = _split(list(read(spec, OPTS)))
    assert rejects == []
    assert [s.ref.source_path for s in scenes] == ["a.png", "b.png"]  # by image id
    a, b = scenes
    assert a.items == ["ann:3", "ann:4"] and b.items == ["ann:1", "ann:2"]
    crowd, boxed = b.instances
    assert isinstance(crowd.geometry, RLE) and crowd.geometry.rle == rle and crowd.crowd
    assert boxed.geometry == Box(1.5, 1.0, 3.5, 4.0) and not boxed.crowd
    assert a.instances[0].geometry == Box(0.0, 0.0, 4.0, 4.0)
    assert isinstance(a.instances[1].geometry, Polygons)
    assert a.ref.group == "a.png" and a.ref.declared_size == (8, 6)


def test_unreadable_inputs_raise(tmp_path):
    with pytest.raises(SourceError):
        list(read(f"{tmp_path}:{tmp_path / 'none.json'}", OPTS))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SourceError):
        list(read(f"{tmp_path}:{bad}", OPTS))
    bad.write_text(json.dumps({"images": {}}))
    with pytest.raises(SourceError):
        list(read(f"{tmp_path}:{bad}", OPTS))
    with pytest.raises(SourceError):
        parse_spec("no-colon")


def test_registered():
    assert get_reader("coco") is read


def test_coco_relation_words_count_only_placed_boxes(tmp_path):
    from tests.owl_data.build.test_hostile import _ann, _coco

    spec = _coco(tmp_path, [_ann(1), _ann(2, segmentation=[[1, 1, 2, 2]], bbox=[70, 50, 0, 0])])  # 2: degenerate
    run_build([spec], tmp_path / "out", BuildConfig())
    assert validate_corpus(tmp_path / "out").ok
    g = table_rows(tmp_path / "out", "grounding")
    assert {r["expression"] for r in g} == {"the car"}
    assert "ambiguous_expression" not in {r["reason"] for r in table_rows(tmp_path / "out", "rejects")}
