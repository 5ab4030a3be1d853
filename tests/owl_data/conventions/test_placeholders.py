"""Where ``<image>``, ``<point>`` and ``<box>`` may stand (owl_data.conventions.placeholders)."""

from __future__ import annotations

import pytest

from owl_data.conventions.placeholders import check_placeholders, placeholder_problem


def _conv(user: str, assistant: str = "An answer.") -> dict:
    return {"conversations": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


@pytest.mark.parametrize("table,row", [
    ("vqa", _conv("<image>What colour is it?")),
    ("caption", _conv("<image>Describe the image.")),
    ("point_vqa", _conv("<image><point>What is this?")),
    ("grounding", _conv("<image>Where is the car?", "<box>")),           # expression -> box
    ("grounding", _conv("<image>What is in <box>?", "the red car")),     # box -> expression
])
def test_rows_that_follow_the_rules(table, row):
    assert placeholder_problem(table, row) == ""


@pytest.mark.parametrize("table,row,problem", [
    ("vqa", _conv("What colour is it?"), "vqa user turn 0 holds 0 <image>: 'What colour is it?'"),
    ("vqa", _conv("<image><image>Two?"), "vqa user turn 0 holds 2 <image>: '<image><image>Two?'"),
    ("caption", _conv("<image><point>Describe."), "caption user turn 0 holds 1 <point>: '<image><point>Describe.'"),
    ("point_vqa", _conv("<image>What is this?"), "point_vqa user turn 0 holds 0 <point>: '<image>What is this?'"),
    ("vqa", _conv("<image>Q?", "a <box>"), "vqa assistant turn 1 holds 1 <box>: 'a <box>'"),
    ("grounding", _conv("<image>Where is it?", "<box> there"),
     "grounding user turn 0 holds 0 <box>: '<image>Where is it?'"),
    ("vqa", {"conversations": [{"role": "assistant", "content": "x"}]}, "no user turn"),
    ("vqa", {"conversations": [{"role": "user", "content": 3}]}, "a turn is not {role, content} text"),
])
def test_what_is_wrong_is_named(table, row, problem):
    assert placeholder_problem(table, row) == problem


def test_a_bad_row_drops_every_row_of_its_item():
    good = {**_conv("<image>Q?"), "_item": "i1"}
    bad = {**_conv("<image>Q <point>?"), "_item": "i1"}
    other = {**_conv("<image>Describe."), "_item": "i2"}
    rows = {"vqa": [good, bad], "caption": [other]}
    why = check_placeholders(rows)
    assert list(why) == ["i1"] and "1 <point>" in why["i1"]
    assert rows == {"vqa": [], "caption": [_conv("<image>Describe.")]}  # _item removed from the kept row
