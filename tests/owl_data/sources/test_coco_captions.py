"""The COCO captions reader (owl_data.sources.coco_captions) on crafted input."""

from __future__ import annotations

import json

from owl_data.build.driver import SourceSpec
from tests.owl_data.helpers import build_checked, write_png


def test_coco_captions_unhashable_image_id_is_malformed(tmp_path):
    d = tmp_path / "coco"
    write_png(d / "val2017" / "1.png")
    (d / "captions_val2017.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "1.png", "width": 80, "height": 60}, {"id": [2], "file_name": "x"}],
        "annotations": [{"id": 10, "image_id": 1, "caption": "A picture."},
                        {"id": 11, "image_id": [3], "caption": "x"}, {"id": 12, "image_id": {}, "caption": "y"},
                        {"id": [13], "image_id": 1, "caption": "z"}]}))
    m = build_checked(tmp_path / "out", SourceSpec("coco_captions", str(d)))
    assert m["sources"]["coco_captions"]["rejects"] == {"malformed_annotation": 3}
