"""One scene to rows (owl_data.build.scene): the split of a group, item keys, a fault kept to its scene."""

from __future__ import annotations

from pathlib import Path

import pytest

import owl_data.build.scene as scene_mod
from owl_data.build.scene import scene_items, split_for_group
from owl_data.records import ImageRef, Scene, TextRow
from tests.owl_data.build.test_hostile import _ann, _build, _coco, _jpg


def test_an_error_inside_one_scene_rejects_that_scene_only(tmp_path, monkeypatch):
    anns = [_ann(1), _ann(2, image_id=2)]
    images = [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
              {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48}]
    src = _coco(tmp_path, anns, images=images)
    _jpg(tmp_path / "coco" / "img" / "b.jpg")
    real = scene_mod.load_image

    def flaky(path, **kw):
        if Path(path).name == "b.jpg":
            raise ValueError("something no check foresaw")
        return real(path, **kw)

    monkeypatch.setattr(scene_mod, "load_image", flaky)
    m, rej = _build([src], tmp_path / "out")
    assert rej == {"ann:2": ("processing_error", "ValueError: something no check foresaw")}
    assert m["sources"]["coco"]["items_kept"] == 1


@pytest.mark.parametrize("group,val_percent,split", [
    ("munster", 15, "train"), ("munster", 16, "val"),  # int(sha256("munster")) % 100 == 15
    ("frankfurt_000000", 98, "train"), ("frankfurt_000000", 99, "val"),  # ... == 98
    ("munster", 0, "train"), ("frankfurt_000000", 100, "val"),
])
def test_split_for_group_by_the_hash_of_the_group(group, val_percent, split):
    assert split_for_group(group, val_percent) == split


def test_scene_items_listed_first_then_the_rows_items_once(tmp_path):
    ref = ImageRef(source="s", path=tmp_path / "a.png", source_path="a.png", group="g", declared_size=(8, 6))
    scene = Scene(ref=ref, items=["b", "a"], rows=[TextRow(task="caption", item="a", answer="x"),
                                                   TextRow(task="caption", item="c", answer="y"),
                                                   TextRow(task="caption", item="c", answer="z")])
    assert scene_items(scene) == ["b", "a", "c"]
