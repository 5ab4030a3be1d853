"""Scene rows to table rows (owl_data.build.rows): ids, rejects."""

from __future__ import annotations

from owl_data.build.driver import SourceSpec
from owl_data.records import Scene, TextRow
from tests.owl_data.helpers import build_checked, table_rows, write_png


def test_builder_never_writes_two_rows_with_one_id(tmp_path, monkeypatch):
    import owl_data.build.driver as build_mod
    from owl_data.sources._common import image_ref

    write_png(tmp_path / "src" / "a.png")

    def twice(spec, options):
        ref = image_ref(options.name, tmp_path / "src", "a.png")
        for _ in range(2):  # a source that lists the same item in two scenes
            yield Scene(ref=ref, rows=[TextRow(task="caption", item="cap:1", answer="A picture.")],
                        sample_points=False)
        yield Scene(ref=ref, rows=[TextRow(task="caption", item="cap:2", answer="Another.")], sample_points=False)

    monkeypatch.setattr(build_mod, "get_reader", lambda name: twice)
    m = build_checked(tmp_path / "out", SourceSpec("llava_caps_boxes", str(tmp_path / "src")))
    ids = [r["id"] for r in table_rows(tmp_path / "out", "caption")]
    assert len(ids) == len(set(ids)) == 2
    assert m["sources"]["llava_caps_boxes"]["items_read"] == 2
