"""The Flickr30k reader (owl_data.sources.flickr30k) on crafted input."""

from __future__ import annotations

import os

from owl_data.build.driver import SourceSpec
from tests.owl_data.helpers import build_checked, table_rows, write_png


def test_flickr30k_non_utf8_sentences_file_is_rejected_by_name(tmp_path):
    d = tmp_path / "f30k"
    for iid in ("1", "4"):
        write_png(d / "flickr30k-images" / f"{iid}.png")
        os.rename(d / "flickr30k-images" / f"{iid}.png", d / "flickr30k-images" / f"{iid}.jpg")
    (d / "Sentences").mkdir()
    (d / "Sentences" / "1.txt").write_text("A man walks .\nA man .\n")
    (d / "Sentences" / "4.txt").write_bytes(b"\xff A bad line .\nanother\n")
    m = build_checked(tmp_path / "out", SourceSpec("flickr30k", str(d)))
    s = m["sources"]["flickr30k"]
    assert (s["items_kept"], s["rejects"]) == (2, {"unreadable_annotation": 2})
    details = {r["detail"] for r in table_rows(tmp_path / "out", "rejects")}
    assert all("4.txt" in x for x in details)
