"""Coordinate conventions: rendering, parsing, rounding bounds, placeholders in text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from owl_data.conventions.coords import (Convention, CoordError, parse_box, parse_point, render_box, render_point,
                                    render_text, restore_text, unit)

unit_floats = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
sizes = st.tuples(st.integers(1, 5000), st.integers(1, 5000))
conventions = st.sampled_from(["qwen", "norm", "pixel"])


def _bound(conv: str, v: float, u: float) -> float:
    """Half a unit, or one unit where qwen clamps values above 0.9995 to 999."""
    return u if conv == "qwen" and v > 0.9995 else u / 2


@settings(max_examples=300, deadline=None)
@given(conventions, sizes, unit_floats, unit_floats)
def test_point_round_trip_within_rounding(conv, size, x, y):
    ux, uy = unit(conv, size)
    text = render_point((x, y), conv, size)
    px, py = parse_point(text, conv, size)
    assert abs(px - x) <= _bound(conv, x, ux) + 1e-12
    assert abs(py - y) <= _bound(conv, y, uy) + 1e-12
    assert render_point((px, py), conv, size) == text  # parsing lands on the grid: idempotent


@settings(max_examples=300, deadline=None)
@given(conventions, sizes, st.lists(unit_floats, min_size=4, max_size=4), st.sampled_from([None, "the red car"]))
def test_box_round_trip_within_one_unit_and_order_kept(conv, size, vals, phrase):
    box = [min(vals[0], vals[2]), min(vals[1], vals[3]), max(vals[0], vals[2]), max(vals[1], vals[3])]
    ux, uy = unit(conv, size)
    text = render_box(box, conv, size, phrase=phrase)
    got, ref = parse_box(text, conv, size)
    for g, v, u in zip(got, box, (ux, uy, ux, uy)):
        assert abs(g - v) <= _bound(conv, v, u) + 1e-12
    assert got[0] <= got[2] and got[1] <= got[3]
    assert ref == (phrase if conv == "qwen" else None)


@settings(max_examples=200, deadline=None)
@given(conventions, sizes, unit_floats, unit_floats, st.text(alphabet="abc xyz?.,'", max_size=30))
def test_placeholders_render_and_restore(conv, size, x, y, words):
    content = f"<image><point>{words} near <box>?"
    box = [0.1, 0.2, 0.3, 0.4]
    text = render_text(content, conv, size, point=(x, y), box=box)
    assert "<point>" not in text and "<box>" not in text
    back, points, boxes = restore_text(text, conv, size)
    assert back == content
    assert len(points) == 1 and len(boxes) == 1


def test_qwen_text_is_qwen2_vl_grounding_syntax():
    box = [0.42274999999999996, 0.0, 0.907875, 0.19055555555555556]
    text = render_box(box, "qwen", phrase="green light")
    assert text == "<|object_ref_start|>green light<|object_ref_end|><|box_start|>(423,0),(908,191)<|box_end|>"
    got, phrase = parse_box(text, "qwen")
    assert phrase == "green light"
    assert all(abs(g - v) <= 1e-3 for g, v in zip(got, box))  # within one unit (1/1000)
    assert render_point((0.652, 0.0913), "qwen") == "(652,91)"


def test_qwen_integers_stay_below_1000_and_round_half_up():
    assert render_box([0.0, 0.0, 1.0, 1.0], "qwen") == "<|box_start|>(0,0),(999,999)<|box_end|>"
    assert render_point((0.0005, 0.0015), "qwen") == "(1,2)"
    assert render_point((0.0004999, 0.9994), "qwen") == "(0,999)"


def test_norm_and_pixel_text():
    assert render_point((0.5, 0.25), "norm") == "[0.500,0.250]"
    assert render_box([0.1, 0.2, 1.0, 0.9], Convention("norm", decimals=2)) == "[0.10,0.20,1.00,0.90]"
    # pixel coordinates are continuous: a source pixel coordinate p maps to p / W
    assert render_point((1043.2 / 1600, 82.2 / 900), "pixel", (1600, 900)) == "[1043,82]"
    assert render_box([0.0, 0.0, 1.0, 1.0], "pixel", (1600, 900)) == "[0,0,1600,900]"
    assert parse_point("[800,450]", "pixel", (1600, 900)) == (0.5, 0.5)


def test_restore_finds_boxes_before_points():
    text = render_text("<box> and <point>", "qwen", point=(0.5, 0.5), box=[0.1, 0.1, 0.2, 0.2], phrase="x")
    back, points, boxes = restore_text(text, "qwen")
    assert back == "<box> and <point>"
    assert points == [(0.5, 0.5)] and boxes[0][1] == "x"


def test_errors_are_clear():
    with pytest.raises(CoordError, match="qwen, norm, pixel"):
        Convention("percent")
    with pytest.raises(CoordError, match="image size"):
        render_point((0.5, 0.5), "pixel")
    with pytest.raises(CoordError, match="not a point"):
        parse_point("(1,2,3)", "qwen")
    with pytest.raises(CoordError, match="not finite"):
        render_point((float("nan"), 0.5), "qwen")
    with pytest.raises(CoordError, match="4 values"):
        render_box([0.1, 0.2], "qwen")


@pytest.mark.parametrize("content, rendered", [
    ("<image>\n<point>What is this?", "<image>\n(495,614) What is this?"),    # the case
    ("<image>\n<point> What is this?", "<image>\n(495,614)  What is this?"),  # a space of its own is kept
    ("Describe <point>", "Describe (495,614)"),                                # no space after a last point
    ("<point><point>?", "(495,614) (495,614) ?"),
])
def test_a_point_is_separated_from_the_words_after_it_and_restored_exactly(content, rendered):
    text = render_text(content, "qwen", point=(0.4952, 0.6143))
    assert text == rendered
    assert restore_text(text, "qwen")[0] == content
    old = Convention("qwen", point_space=False)  # an export written before the space reads as it was written
    unspaced = render_text(content, old, point=(0.4952, 0.6143))
    assert unspaced == content.replace("<point>", "(495,614)")
    assert restore_text(unspaced, old)[0] == content


def test_llava_export_separates_the_point_and_an_older_export_still_imports(syn_corpus, tmp_path):
    import json

    from owl_data.export import export_llava
    from owl_data.export.llava import LLAVA

    ex = tmp_path / "ex"
    export_llava(syn_corpus, ex)
    side = json.loads((ex / "owl_export.json").read_text())
    assert side["coords"]["point_space"] is True
    recs = json.loads(next(ex.glob("point_vqa_*.json")).read_text())
    asks = [r["conversations"][0]["value"] for r in recs]
    assert asks and all(re.search(r"\(\d+,\d+\) \S", a) or re.search(r"\(\d+,\d+\)$", a) for a in asks), asks[:3]
    rows = LLAVA.read(ex).rows
    # the same export written the old way (no space, no point_space in its sidecar) reads back the same rows
    for p in ex.glob("point_vqa_*.json"):
        old = json.loads(p.read_text())
        for r in old:
            for t in r["conversations"]:
                t["value"] = re.sub(r"(\(\d+,\d+\)) ", r"\1", t["value"])
        p.write_text(json.dumps(old))
    del side["coords"]["point_space"]
    (ex / "owl_export.json").write_text(json.dumps(side))
    assert LLAVA.read(ex).rows == rows
