"""Property tests (hypothesis) of the Cityscapes reader (frames and the polygons file's size check)
through the real build path.

- Polygons file: a valid ``*_gtFine_polygons.json`` with random mutations (see
  :func:`tests.owl_data.sources.test_properties_coco.mutated`), truncated or with a byte that is
  not UTF-8, never crashes the build. The outcome is the one a reference of the documented rule
  gives: the frame is read as without the file when ``imgWidth``/``imgHeight`` are the image's
  size as finite whole numbers (``24`` or ``24.0``); a frame of one reject
  ``size_mismatch`` when they are other whole numbers; ``unreadable_annotation`` otherwise.
- Round trip: instanceIds maps drawn from random disjoint rectangles (cars, persons: one id each;
  poles: one 8-connected component each) come back as point_vqa targets whose ``bbox`` is the
  rectangle divided by the frame size, exactly (the map is the mask: no rasterisation), and
  whose points lie inside it; every instance is kept.
- Determinism: the same folder twice gives the same fingerprint.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from owl_data.build.config import BuildConfig
from owl_data.build.driver import SourceSpec, run_build
from tests.helpers import fails_after
from tests.owl_data.helpers import table_rows
from tests.owl_data.sources.test_cityscapes import _frame
from tests.owl_data.sources.test_properties_coco import check_accounting, fresh, mutated

CELL = 12
CLASSES = {"car": 26, "person": 24, "pole": 17}
ROAD = 7
STEM = "testcity_000000_000000"
POLY = f"gtFine/train/testcity/{STEM}_gtFine_polygons.json"


@st.composite
def street_layouts(draw) -> dict:
    """A frame size and disjoint integer rectangles (class, x1, y1, x2, y2), one per 12x12 cell."""
    w, h = draw(st.integers(CELL * 2, CELL * 5)), draw(st.integers(CELL, CELL * 4))
    cells = [(c, r) for c in range(w // CELL) for r in range(h // CELL)]
    rects = []
    for c, r in draw(st.lists(st.sampled_from(cells), min_size=1, max_size=5, unique=True)):
        x1, y1 = draw(st.integers(c * CELL, c * CELL + 4)), draw(st.integers(r * CELL, r * CELL + 4))
        x2, y2 = draw(st.integers(x1 + 6, c * CELL + CELL - 1)), draw(st.integers(y1 + 6, r * CELL + CELL - 1))
        rects.append((draw(st.sampled_from(sorted(CLASSES))), x1, y1, x2, y2))
    return {"w": w, "h": h, "rects": rects}


def instance_map(layout: dict) -> tuple[np.ndarray, dict[str, tuple[int, int, int, int]]]:
    """(the (H, W) instanceIds map on road, instance name -> its rectangle x1, y1, x2, y2).

    Names are what the reader calls them: ``class_id * 1000 + k`` for cars and persons (k per
    class, in drawing order), ``17:k`` for poles with k in raster order of their first pixel
    (scipy's label order: by top row, then left column).
    """
    inst = np.full((layout["h"], layout["w"]), ROAD, np.uint16)
    truth: dict[str, tuple[int, int, int, int]] = {}
    counts = {c: 0 for c in CLASSES}
    for cls, x1, y1, x2, y2 in layout["rects"]:
        if cls == "pole":
            inst[y1:y2, x1:x2] = CLASSES["pole"]
            continue
        v = CLASSES[cls] * 1000 + counts[cls]
        counts[cls] += 1
        inst[y1:y2, x1:x2] = v
        truth[str(v)] = (x1, y1, x2, y2)
    poles = sorted((y1, x1, x2, y2) for cls, x1, y1, x2, y2 in layout["rects"] if cls == "pole")
    for k, (y1, x1, x2, y2) in enumerate(poles):
        truth[f"{CLASSES['pole']}:{k}"] = (x1, y1, x2, y2)
    return inst, truth


def polygons_doc(layout: dict) -> dict:
    """The polygons file of a layout (cityscapesscripts' layout: size and labelled polygons)."""
    return {"imgHeight": layout["h"], "imgWidth": layout["w"], "objects": [
        {"label": cls, "polygon": [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]} for cls, x1, y1, x2, y2 in layout["rects"]]}


def city_build(folder: Path, layout: dict, polygons: str | bytes | None = None) -> tuple[Path, dict, str]:
    """Write one frame (and its polygons file, text or raw bytes), build; (corpus, manifest, source_path)."""
    root = folder / "cityscapes"
    sp = _frame(root, instance_map(layout)[0], stem=STEM)
    if polygons is not None:
        p = root / POLY
        p.write_bytes(polygons if isinstance(polygons, bytes) else polygons.encode("utf-8", "surrogatepass"))
    out = folder / "out"
    with fails_after(60, "a Cityscapes build"):
        manifest = run_build([SourceSpec("cityscapes", str(root))], out, BuildConfig()).manifest
    return out, manifest, sp


def _whole(v: Any) -> int | None:
    """A finite whole number >= 1 (not a bool) as an int, else None: the documented size rule."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return int(f) if math.isfinite(f) and f >= 1 and f == int(f) else None


def expected_reason(doc: Any, w: int, h: int) -> str | None:
    """Reference: None when the frame is read, else the reason of its one reject."""
    if not isinstance(doc, dict) or "imgWidth" not in doc or "imgHeight" not in doc:
        return "unreadable_annotation"
    size = (_whole(doc["imgWidth"]), _whole(doc["imgHeight"]))
    if None in size:
        return "unreadable_annotation"
    return None if size == (w, h) else "size_mismatch"


def _check_frame(out: Path, manifest: dict, sp: str, layout: dict, reason: str | None) -> None:
    s = check_accounting(out, manifest, "cityscapes")
    if reason is None:  # read as without the file: every drawn instance kept
        n = len(instance_map(layout)[1])
        assert (s["items_read"], s["items_kept"]) == (n, n)
    else:
        assert (s["items_read"], s["items_kept"], s["rejects"]) == (1, 0, {reason: 1})
        assert [(r["item"], r["reason"]) for r in table_rows(out, "rejects")] == [(sp, reason)]


_SMALL = {"w": 24, "h": 12, "rects": [("car", 1, 1, 8, 8)]}


@settings(max_examples=25, deadline=None)
@given(layout=street_layouts(), data=st.data())
@example(layout=_SMALL, data=None).via("a float size is a whole number")
def test_mutated_polygons_file_outcome_follows_the_rule(tmp_path_factory, layout, data):
    doc = mutated(data, polygons_doc(layout)) if data is not None else {**polygons_doc(layout), "imgWidth": 24.0}
    out, manifest, sp = city_build(fresh(tmp_path_factory), layout, json.dumps(doc))
    _check_frame(out, manifest, sp, layout, expected_reason(doc, layout["w"], layout["h"]))


@settings(max_examples=10, deadline=None)
@given(layout=street_layouts(), cut=st.integers(0, 200), bad=st.sampled_from([b"\xff", b"\xc3(", b"\x00", b""]))
def test_damaged_polygons_bytes_are_unreadable(tmp_path_factory, layout, cut, bad):
    text = json.dumps(polygons_doc(layout)).encode()
    cut = min(cut, len(text) - 1)  # a strict prefix of the JSON is never a whole document
    damaged = text[:cut] + bad
    out, manifest, sp = city_build(fresh(tmp_path_factory), layout, damaged)
    _check_frame(out, manifest, sp, layout, "unreadable_annotation")


@settings(max_examples=15, deadline=None)
@given(layout=street_layouts())
def test_drawn_rectangles_round_trip(tmp_path_factory, layout):
    out, manifest, _ = city_build(fresh(tmp_path_factory), layout, json.dumps(polygons_doc(layout)))
    _, truth = instance_map(layout)
    s = check_accounting(out, manifest, "cityscapes")
    assert (s["items_read"], s["items_kept"]) == (len(truth), len(truth))
    w, h = layout["w"], layout["h"]
    rows = [r for r in table_rows(out, "point_vqa") if r["target"]["instance"] != str(ROAD)]  # road: stuff points
    assert {r["target"]["instance"] for r in rows} == set(truth)
    for r in rows:
        x1, y1, x2, y2 = truth[r["target"]["instance"]]
        assert r["target"]["bbox"] == pytest.approx([x1 / w, y1 / h, x2 / w, y2 / h], abs=1e-12)
        assert x1 / w < r["point"]["x"] < x2 / w and y1 / h < r["point"]["y"] < y2 / h


@settings(max_examples=4, deadline=None)
@given(layout=street_layouts())
def test_same_folder_same_fingerprint(tmp_path_factory, layout):
    _, a, _ = city_build(fresh(tmp_path_factory), layout, json.dumps(polygons_doc(layout)))
    _, b, _ = city_build(fresh(tmp_path_factory), layout, json.dumps(polygons_doc(layout)))
    assert a["fingerprint"] == b["fingerprint"]


# --- faults found by these tests, fixed in cityscapes.py ----------------------------------------


def test_frame_name_not_utf8_is_accounted(tmp_path):
    city_build(tmp_path, _SMALL)
    root = tmp_path / "cityscapes"
    bad = "testcity_000000_\udcff00001"  # the bytes b"\xff" in the file name (surrogateescape)
    for sub, suffix in (("leftImg8bit", "_leftImg8bit.png"), ("gtFine", "_gtFine_instanceIds.png")):
        folder = root / sub / "train" / "testcity"
        os.link(folder / f"{STEM}{suffix}", folder / f"{bad}{suffix}")
    out = tmp_path / "out2"
    manifest = run_build([SourceSpec("cityscapes", str(root))], out, BuildConfig()).manifest
    s = check_accounting(out, manifest, "cityscapes")
    assert s["items_read"] >= 2 and s["items_kept"] >= 1  # the good frame kept, the other accounted


def _replace_by(path: Path, kind: str) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path) if kind == "fifo" else path.mkdir()


@pytest.mark.parametrize("suffix", ["_gtFine_instanceIds.png", "_gtFine_labelIds.png", "_gtFine_polygons.json"])
@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_partner_that_is_not_a_regular_file_rejects_the_frame(tmp_path, suffix, kind):
    city_build(tmp_path, _SMALL)
    root = tmp_path / "cityscapes"
    _replace_by(root / "gtFine" / "train" / "testcity" / f"{STEM}{suffix}", kind)
    out = tmp_path / "out2"
    with fails_after(20, "a Cityscapes build over a FIFO"):
        manifest = run_build([SourceSpec("cityscapes", str(root))], out, BuildConfig()).manifest
    assert check_accounting(out, manifest, "cityscapes")["rejects"] == {"not_a_regular_file": 1}
