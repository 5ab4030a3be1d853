"""The llava_caps_boxes reader (owl_data.sources.llava_caps_boxes) on crafted input."""

from __future__ import annotations

from owl_data.build.driver import SourceSpec
from tests.owl_data.helpers import build_checked, lcb_source, table_rows


def test_llava_caps_boxes_duplicate_ids_and_only_valid_boxes_count(tmp_path):
    src = lcb_source(tmp_path, [
        {"id": 1, "image": "a.png", "captions": ["A car."],
         "instances": [{"category": "car", "bbox": [0.1, 0.1, 0.5, 0.5]},
                       {"category": "car", "bbox": [0.5, 0.5, 0.1, 0.1]},     # reversed
                       {"category": "car", "bbox": [0.1, 0.1, 0.1, 0.1]}]},   # zero area
        {"id": 1, "image": "a.png", "captions": ["dup id"]},
        {"id": [2], "image": "a.png", "captions": ["unhashable id"]}], raw=b"\n{\"id\": 4, \"captions\": [\"\xff\"]}")
    out = tmp_path / "out"
    m = build_checked(out, SourceSpec("llava_caps_boxes", str(src)))
    g = table_rows(out, "grounding")
    assert {r["expression"] for r in g} == {"the car"} and len(g) == 2
    rej = {r["item"]: r["reason"] for r in table_rows(out, "rejects")}
    assert rej["x_caps_boxes.jsonl:1#line2"] == "duplicate_id"
    assert rej["x_caps_boxes.jsonl:line3"] == "malformed_line"
    assert rej["x_caps_boxes.jsonl:line4"] == "malformed_line"  # not UTF-8: that line only
    assert m["sources"]["llava_caps_boxes"]["rejects"]["bad_box"] == 1
