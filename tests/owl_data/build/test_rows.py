"""Scene rows to table rows (owl_data.build.rows): ids, rejects."""

from __future__ import annotations

import pytest

from owl_data.build.driver import SourceSpec
from owl_data.build.rows import conversation, row_id, user_point
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


def test_row_id_is_24_hex_digits_of_the_joined_parts():
    assert row_id("a", "b", 3) == "487faa3e3d39652e23952bae"  # sha256(b"a\x1fb\x1f3")[:24]
    assert row_id("a", "b", 3) != row_id("a", "b3")


@pytest.mark.parametrize("question,user", [(None, "<image><point>"), ("What is this?", "<image><point>What is this?"),
                                           ("Is <point> a car?", "<image>Is <point> a car?")])
def test_user_point_places_the_point_once(question, user):
    assert user_point(question) == user


def test_conversation_turns_and_the_optional_system_turn():
    assert conversation("q", "a") == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    assert conversation("q", "a", "") == conversation("q", "a")
    assert conversation("q", "a", "Be terse.")[0] == {"role": "system", "content": "Be terse."}
