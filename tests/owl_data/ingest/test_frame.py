"""The ``?frame=`` rule (owl_data.ingest.frame.annotation_frame), case by case."""

from __future__ import annotations

import pytest

from owl_data.ingest.frame import annotation_frame
from owl_data.ingest.geometry import GeometryError

# raw 1200x1800 (portrait grid), so upright is 1800x1200 for orientations 5..8
_R, _U = (1200, 1800), (1800, 1200)


@pytest.mark.parametrize("declared,orientation,frame,want", [
    # orientation 1: the frames coincide, every option takes the file's grid, never ambiguous
    (None, 1, "upright", ("upright", _R, False)), (_R, 1, "raw", ("upright", _R, False)),
    (_R, 1, "auto", ("upright", _R, False)),
    # orientations 2..4: both frames have the raw size; the option decides (ambiguous)
    (_R, 3, "upright", ("upright", _R, True)), (_R, 3, "raw", ("raw", _R, True)), (_R, 3, "auto", ("raw", _R, True)),
    (None, 2, "upright", ("upright", _R, True)), (None, 4, "raw", ("raw", _R, True)),
    # orientations 5..8 with a stated size: it settles the frame (never ambiguous)
    (_U, 6, "upright", ("upright", _U, False)), (_R, 6, "raw", ("raw", _R, False)),
    (_U, 8, "auto", ("upright", _U, False)), (_R, 8, "auto", ("raw", _R, False)),
    # ... and with none, the option decides (ambiguous); auto falls back to raw
    (None, 6, "upright", ("upright", _U, True)), (None, 5, "raw", ("raw", _R, True)),
    (None, 7, "auto", ("raw", _R, True)),
    # a square image: both sizes equal whatever the orientation
    ((500, 500), 6, "upright", ("upright", (500, 500), True)),
    # an invalid tag counts as 1
    (_R, 9, "upright", ("upright", _R, False)),
])
def test_annotation_frame_rules(declared, orientation, frame, want):
    raw = (500, 500) if declared == (500, 500) else _R
    af = annotation_frame(declared, raw, orientation, frame)
    assert (af.name, af.size, af.ambiguous) == want
    assert af.rotate == (want[0] == "raw")


@pytest.mark.parametrize("declared,orientation,frame,words", [
    ((100, 100), 6, "auto", "matches neither"),
    ((100, 100), 1, "upright", "matches neither"),
    (_R, 6, "upright", "is the raw size of an EXIF-6 image"),   # upright asked, raw stated
    (_U, 5, "raw", "is the upright size of an EXIF-5 image"),   # raw asked, upright stated
])
def test_annotation_frame_contradiction_is_size_mismatch(declared, orientation, frame, words):
    with pytest.raises(GeometryError, match=words) as e:
        annotation_frame(declared, _R, orientation, frame)
    assert e.value.reason == "size_mismatch"


def test_annotation_frame_refuses_an_unknown_option():
    with pytest.raises(ValueError, match="expected one of upright, raw, auto"):
        annotation_frame(None, _R, 6, "sideways")
