"""The RefCOCO reader (owl_data.sources.refcoco) on crafted and hostile input."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owl_data.build.driver import SourceSpec
from owl_data.cli.app import app
from owl_data.sources import SourceError
from owl_data.sources.refcoco import UnsafePickle, load_refs
from tests.helpers import one_line_error
from tests.owl_data.helpers import build_checked, table_rows, write_png

runner = CliRunner()

def _refcoco(tmp: Path, refs_bytes: bytes, images: list | None = None, anns: list | None = None) -> str:
    d = tmp / "refcoco"
    d.mkdir(exist_ok=True)
    write_png(tmp / "images" / "a.png")
    (d / "instances.json").write_text(json.dumps({
        "images": images if images is not None else [{"id": 7, "file_name": "a.png", "width": 80, "height": 60}],
        "annotations": anns if anns is not None else [{"id": 70, "image_id": 7, "bbox": [8, 6, 40, 30]}],
        "categories": [{"id": 3, "name": "car"}]}))
    (d / "refs(unc).p").write_bytes(refs_bytes)
    return f"{d}?images={tmp / 'images'}"


GOOD = {"ref_id": 1, "ann_id": 70, "image_id": 7, "split": "train", "category_id": 3,
        "sentences": [{"sent": "the red thing"}]}


def test_refcoco_duplicate_refs_and_unhashable_ids(tmp_path):
    m = build_checked(tmp_path / "o1", SourceSpec("refcoco", _refcoco(tmp_path, pickle.dumps([GOOD, GOOD]))))
    assert m["sources"]["refcoco"]["rejects"] == {"duplicate_ref": 1}
    assert len(table_rows(tmp_path / "o1", "grounding")) == 2
    bad = [{**GOOD, "ref_id": 2, "ann_id": [10]}, {**GOOD, "ref_id": [1]}, {**GOOD, "ref_id": 3, "category_id": {}},
           {**GOOD, "ref_id": 4, "ann_id": 71}, {**GOOD, "ref_id": 5, "ann_id": 72}]
    spec = _refcoco(tmp_path, pickle.dumps(bad),
                    images=[{"id": [1], "file_name": "a.png"}, {"id": None, "file_name": "a.png"},
                            {"id": 7, "file_name": "a.png", "width": 80, "height": 60}],
                    anns=[{"id": 70, "image_id": 7, "bbox": [8, 6, 40, 30]}, {"id": 71, "image_id": None,
                                                                              "bbox": [1, 1, 5, 5]},
                          {"id": 72, "image_id": [7], "bbox": [1, 1, 5, 5]}, {"id": {}, "bbox": [1, 1, 5, 5]}])
    m = build_checked(tmp_path / "o2", SourceSpec("refcoco", spec))
    assert m["sources"]["refcoco"]["rejects"] == {"malformed_ref": 2, "unknown_image": 2}
    assert m["sources"]["refcoco"]["items_kept"] == 1  # category_id {}: no category, still a row


def test_refcoco_hostile_pickles_are_clear_errors(tmp_path):
    p = tmp_path / "refs.p"
    for data, exc, match in [
        (b"\x80\x02]}X\x01\x00\x00\x00aK\x01sb.", UnsafePickle, "BUILD"),                # state on a list
        (b"\x80\x02}}X\x01\x00\x00\x00aK\x01sb.", UnsafePickle, "BUILD"),                # state on a dict
        (b"\x80\x04\x8e" + (2 ** 62).to_bytes(8, "little") + b"xx.", SourceError, "not a readable pickle"),
        (b"\x80\x02]" + b"(" * 100 + b".", SourceError, "not a readable pickle"),
    ]:
        p.write_bytes(data)
        with pytest.raises(exc, match=match):
            load_refs(p)
    spec = _refcoco(tmp_path, b"\x80\x02]}X\x01\x00\x00\x00aK\x01sb.")
    out = one_line_error(runner.invoke(app, ["build", "--source", f"refcoco={spec}", "--out", str(tmp_path / "o")]))
    assert "BUILD" in out


def test_a_split_is_never_a_path(tmp_path):
    ref = {**GOOD, "split": "../../../escaped"}
    m = build_checked(tmp_path / "out", SourceSpec("refcoco", _refcoco(tmp_path, pickle.dumps([ref]))))
    assert m["sources"]["refcoco"]["rejects"] == {"bad_split": 1}
    assert not (tmp_path / "escaped").exists() and not any(tmp_path.parent.glob("escaped"))
