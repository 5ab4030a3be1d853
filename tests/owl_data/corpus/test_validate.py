"""validate_corpus (owl_data.corpus.validate): what it checks and reports."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from owl_data.corpus.validate import validate_corpus
from tests.owl_data.build.test_hostile import _ann, _build, _coco


def test_validate_applies_the_placeholder_rule_to_every_row(lcb_corpus):
    f = next((lcb_corpus / "caption").rglob("*.parquet"))
    t = pq.read_table(f)
    rows = t.to_pylist()
    rows[0]["conversations"][-1]["content"] += " <point>"
    pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), f)
    rep = validate_corpus(lcb_corpus)
    assert any("placeholders" in p and "<point>" in p for p in rep.problems), rep.problems


def test_validate_checks_reject_counts_per_source(tmp_path):
    out = tmp_path / "out"
    _build([_coco(tmp_path, [_ann(1), _ann(2, category_id=9)])], out)
    m = json.loads((out / "manifest.json").read_text())
    m["sources"]["coco"]["rejects"] = {"unknown_category": 2}
    (out / "manifest.json").write_text(json.dumps(m))
    assert any("rejects by reason" in p for p in validate_corpus(out).problems)


def test_row_problems_names_each_fault_of_a_row():
    from owl_data.corpus.validate import row_problems

    good = {"conversations": [{"role": "user", "content": "<image><point>What?"}, {"role": "assistant", "content": "x"}],
            "point": {"x": 0.5, "y": 0.5}, "target": {"bbox": [0.1, 0.1, 0.9, 0.9]}, "point_origin": "mask",
            "kind": "description"}
    assert row_problems("point_vqa", good) == []
    bad = {**good, "point": {"x": 1.5, "y": 0.5}, "target": {"bbox": [0.9, 0.1, 0.1, 0.9]}, "point_origin": "guess",
           "kind": None}
    assert row_problems("point_vqa", bad) == ["point {'x': 1.5, 'y': 0.5} outside [0, 1]",
                                              "target bbox [0.9, 0.1, 0.1, 0.9] not ordered in [0, 1]",
                                              "point_origin 'guess'", "kind None"]
    g = {"conversations": [{"role": "user", "content": "<image>Where?"}, {"role": "assistant", "content": "<box>"}],
         "bbox": [0.3, 0.2, 0.2, 0.9]}
    assert row_problems("grounding", g) == ["bbox [0.3, 0.2, 0.2, 0.9] not ordered in [0, 1]"]
    assert row_problems("vqa", {"conversations": [{"role": "user", "content": "no image"}]}) == \
        ["placeholders: vqa user turn 0 holds 0 <image>: 'no image'"]


def test_validate_checks_frames_and_reads_manifests_without_them(lcb_corpus):
    """``frames`` (builds with the ?frame= option) must be {upright, raw, ambiguous} counts with
    no more ambiguous images than images; a manifest written before it (no ``frames``) is valid."""
    path = lcb_corpus / "manifest.json"
    m = json.loads(path.read_text())
    s = m["sources"]["llava_caps_boxes"]
    assert s["frames"] == {"upright": 1, "raw": 0, "ambiguous": 0}  # a PNG without EXIF
    assert validate_corpus(lcb_corpus).ok
    for bad, words in (({"upright": 1, "raw": 0, "ambiguous": 2}, "2 ambiguous of 1 images"),
                       ({"upright": 1, "raw": -1, "ambiguous": 0}, "is not {upright, raw, ambiguous}"),
                       ({"upright": 1, "raw": 0}, "is not {upright, raw, ambiguous}"),
                       ([1, 0, 0], "is not {upright, raw, ambiguous}")):
        s["frames"] = bad
        path.write_text(json.dumps(m))
        assert any("source llava_caps_boxes: frames" in p and words in p for p in validate_corpus(lcb_corpus).problems), bad
    del s["frames"]
    path.write_text(json.dumps(m))
    assert validate_corpus(lcb_corpus).ok
