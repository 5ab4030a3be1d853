"""Property tests (hypothesis) of the COCO instances reader through the real build path.

- Accounting: a valid document with random mutations (missing keys, wrong types, NaN/inf/huge/
  negative numbers, strings where numbers go, duplicate ids, empty lists, unicode, nested junk,
  ids referring to nothing) never crashes the build; either the documented ``SourceError`` for a
  top level that is not ``{images: [...], annotations: [...]}`` or a corpus whose every
  annotation entry is one item, read = kept + rejected, each reject with a reason, the reject
  rows equal to the manifest's counts.
- Round trip: boxes, polygons and RLE (uncompressed and compressed) drawn from random integer
  rectangles come back as point_vqa targets whose ``bbox`` is the rectangle divided by the image
  size; tolerance 0 for boxes and RLE (exact pixel edges), 1 pixel for polygons (rasterised by
  pycocotools).
- Determinism: the same input twice gives the same fingerprint, and the order of the
  ``annotations`` list does not change the set of rows.

The mutation strategy and the accounting check are shared with the DriveLM and Cityscapes
property tests.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from owl_data.build.config import BuildConfig
from owl_data.build.driver import SourceSpec, run_build
from owl_data.corpus.validate import validate_corpus
from owl_data.sources import SourceError
from tests.owl_data.helpers import table_rows, write_png

# --- shared: junk values, mutations, the accounting check -----------------------------------

_HUGE = 10**400  # JSON allows it; float() overflows


def _nest(depth: int, leaf: Any, as_dict: bool) -> Any:
    for _ in range(depth):
        leaf = {"k": leaf} if as_dict else [leaf]
    return leaf


JUNK = st.one_of(
    st.none(), st.booleans(),
    st.sampled_from([math.nan, math.inf, -math.inf, _HUGE, -_HUGE, -1, 0, -0.5, 1e308, 2**63, "1", "", "NaN"]),
    st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),  # any code point: lone surrogates, NUL, right-to-left marks
    st.just([]), st.just({}),
    st.builds(_nest, st.integers(1, 40), st.sampled_from([0, "x", None, []]), st.booleans()),
    st.lists(st.integers(-5, 5) | st.text(max_size=2), max_size=5),
)
"""A value that does not belong where it is put."""

_OPS = ("replace", "delete", "duplicate", "insert", "stringify")


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (a tuple of keys and indices) below ``node``, parents before children."""
    out: list[tuple] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        out.append(prefix + (k,))
        out += _paths(v, prefix + (k,))
    return out


def _mutate(doc: Any, path: tuple, op: str, junk: Any) -> None:
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    value = parent[key]
    junk = copy.deepcopy(junk)  # st.just([]) hands out one object: never insert it into itself
    if op == "replace":
        parent[key] = junk
    elif op == "delete":
        del parent[key]
    elif op == "duplicate" and isinstance(value, list) and value:
        value.append(copy.deepcopy(value[0]))  # a second entry with the first's id
    elif op == "insert" and isinstance(value, list):
        value.insert(len(value) // 2, junk)
    elif op == "insert" and isinstance(value, dict):
        value[f"junk\u202e{len(value)}"] = junk
    elif op == "stringify" and not isinstance(value, (dict, list)):
        parent[key] = json.dumps(value)  # 5 -> "5", "a" -> '"a"'
    else:
        parent[key] = junk


def mutated(data: st.DataObject, doc: Any, max_mutations: int = 4) -> Any:
    """A deep copy of ``doc`` with 0..``max_mutations`` random mutations (hypothesis draws)."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(0, max_mutations), label="n_mutations")):
        paths = _paths(doc)
        if not paths:
            break
        path = paths[data.draw(st.integers(0, len(paths) - 1), label="where")]
        _mutate(doc, path, data.draw(st.sampled_from(_OPS), label="op"), data.draw(JUNK, label="junk"))
    return doc


def check_accounting(out: Path, manifest: dict, source: str) -> dict:
    """Assert the source's accounting in a finished corpus; return its manifest entry.

    read = kept + rejected; one reject row per rejected item, each with a stage and a reason;
    the rows' reasons counted equal the manifest's; the corpus validates.
    """
    s = manifest["sources"][source]
    assert s["items_read"] == s["items_kept"] + s["items_rejected"]
    rejects = [r for r in table_rows(out, "rejects") if r["source"] == source]
    assert len(rejects) == s["items_rejected"] == len({r["item"] for r in rejects})
    assert all(r["reason"] and r["stage"] for r in rejects)
    assert dict(Counter(r["reason"] for r in rejects)) == s["rejects"]
    rep = validate_corpus(out)
    assert rep.ok, rep.problems
    return s


def fresh(factory: pytest.TempPathFactory) -> Path:
    """A new empty folder per hypothesis example (``tmp_path`` is one per test, not per example)."""
    return factory.mktemp("ex", numbered=True)


# --- COCO documents -------------------------------------------------------------------------

CELL = 12  # rectangles are drawn one per 12x12 cell, leaving a gap: no two masks overlap
CATEGORIES = [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}, {"id": 3, "name": "bus"}]


@st.composite
def coco_layouts(draw) -> list[dict]:
    """Images (``w``, ``h``) and their annotations: (kind, integer pixel rect x1, y1, x2, y2, category)."""
    images = []
    for _ in range(draw(st.integers(1, 2))):
        w, h = draw(st.integers(CELL * 2, CELL * 5)), draw(st.integers(CELL, CELL * 4))
        cells = [(c, r) for c in range(w // CELL) for r in range(h // CELL)]
        picked = draw(st.lists(st.sampled_from(cells), min_size=1, max_size=4, unique=True))
        anns = []
        for c, r in picked:
            x1, y1 = draw(st.integers(c * CELL, c * CELL + 4)), draw(st.integers(r * CELL, r * CELL + 4))
            x2 = draw(st.integers(x1 + 6, c * CELL + CELL - 1))
            y2 = draw(st.integers(y1 + 6, r * CELL + CELL - 1))
            kind = draw(st.sampled_from(["box", "polygon", "rle", "rle_compressed"]))
            anns.append((kind, (x1, y1, x2, y2), draw(st.integers(1, 3))))
        images.append({"w": w, "h": h, "anns": anns})
    return images


def _segment(kind: str, rect: tuple[int, int, int, int], w: int, h: int) -> dict:
    x1, y1, x2, y2 = rect
    if kind == "box":
        return {"segmentation": [], "bbox": [x1, y1, x2 - x1, y2 - y1]}
    if kind == "polygon":
        return {"segmentation": [[x1, y1, x2, y1, x2, y2, x1, y2]], "bbox": [x1, y1, x2 - x1, y2 - y1]}
    m = np.zeros((h, w), np.uint8)
    m[y1:y2, x1:x2] = 1
    if kind == "rle_compressed":
        counts = mask_utils.encode(np.asfortranarray(m))["counts"].decode()
    else:  # runs of the column-major pixels, 0s first
        flat = m.flatten(order="F").tolist()
        counts = ([0] if flat[0] else []) + [len(list(g)) for _, g in itertools.groupby(flat)]
    return {"segmentation": {"size": [h, w], "counts": counts}, "bbox": [x1, y1, x2 - x1, y2 - y1]}


def coco_doc(layout: list[dict]) -> tuple[dict, dict[int, tuple]]:
    """(the COCO document, annotation id -> (kind, rect, w, h)) of a layout; files ``im<i>.png``."""
    doc: dict = {"images": [], "annotations": [], "categories": copy.deepcopy(CATEGORIES)}
    truth: dict[int, tuple] = {}
    for i, im in enumerate(layout):
        doc["images"].append({"id": i + 1, "file_name": f"im{i}.png", "width": im["w"], "height": im["h"]})
        for kind, rect, cat in im["anns"]:
            aid = len(truth) + 100
            doc["annotations"].append({"id": aid, "image_id": i + 1, "category_id": cat, "iscrowd": 0,
                                       **_segment(kind, rect, im["w"], im["h"])})
            truth[aid] = (kind, rect, im["w"], im["h"])
    return doc, truth


def coco_build(folder: Path, layout: list[dict], doc: Any) -> tuple[Path, dict]:
    """Write the layout's PNGs and ``doc`` under ``folder``, build; (corpus, manifest)."""
    for i, im in enumerate(layout):
        write_png(folder / "img" / f"im{i}.png", im["w"], im["h"])
    ann = folder / "ann.json"
    ann.write_text(json.dumps(doc))
    out = folder / "out"
    return out, run_build([SourceSpec("coco", f"{folder / 'img'}:{ann}")], out, BuildConfig()).manifest


def _top_level_ok(doc: Any) -> bool:
    """The reader's documented condition for reading a document at all."""
    return (isinstance(doc, dict) and isinstance(doc.get("images"), list)
            and isinstance(doc.get("annotations"), list) and isinstance(doc.get("categories", []), list))


_LAYOUT = [{"w": 36, "h": 24, "anns": [("polygon", (1, 1, 9, 9), 1), ("box", (13, 2, 20, 10), 2)]}]


def _explicit(doc_edit):
    """A crafted mutation of ``_LAYOUT``'s document, for @example."""
    doc, _ = coco_doc(_LAYOUT)
    doc_edit(doc)
    return doc


# --- the properties -------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(layout=coco_layouts(), data=st.data())
def test_mutated_documents_are_fully_accounted(tmp_path_factory, layout, data):
    doc = mutated(data, coco_doc(layout)[0])
    folder = fresh(tmp_path_factory)
    if not _top_level_ok(doc):
        with pytest.raises(SourceError):
            coco_build(folder, layout, doc)
        return
    out, manifest = coco_build(folder, layout, doc)
    s = check_accounting(out, manifest, "coco")
    assert s["items_read"] == len(doc["annotations"])  # every entry is one item, junk included


@pytest.mark.parametrize("edit, rejected", [
    (lambda d: d["annotations"].append(copy.deepcopy(d["annotations"][0])), {"ann:100#2": "duplicate_annotation"}),
    (lambda d: d["annotations"][0].update(id=True), {"ann:#0": "malformed_annotation"}),
    (lambda d: d["annotations"][0].update(bbox=[1, 1, math.nan, 2], segmentation=[]), {"ann:100": "non_finite"}),
    (lambda d: d["annotations"][0].update(segmentation=[[1, 1, _HUGE, 1, 9, 9]]), {"ann:100": "non_finite"}),
    (lambda d: d["annotations"][0].update(segmentation={"size": [24, 36], "counts": "\udcff"}),
     {"ann:100": "bad_rle"}),
    (lambda d: d["images"][0].update(file_name="a\udcffb.png"),  # found by hypothesis: a failed build
     {"ann:100": "malformed_image_entry", "ann:101": "malformed_image_entry"}),
    (lambda d: d["categories"][1].update(name="bus\ud800"), {"ann:101": "unknown_category"}),  # likewise
    (lambda d: d["images"][0].update(width=_HUGE), {"ann:100": "malformed_image_entry",
                                                    "ann:101": "malformed_image_entry"}),
    (lambda d: d["annotations"][1].update(image_id=[1]), {"ann:101": "malformed_annotation"}),
    (lambda d: d["categories"].append({"id": 2, "name": ["x"]}), {}),
])
def test_crafted_mutations_are_fully_accounted(tmp_path, edit, rejected):
    doc = _explicit(edit)
    out, manifest = coco_build(tmp_path, _LAYOUT, doc)
    assert check_accounting(out, manifest, "coco")["items_read"] == len(doc["annotations"])
    assert {r["item"]: r["reason"] for r in table_rows(out, "rejects")} == rejected


def _bbox_px(bbox: list[float], w: int, h: int) -> tuple[float, ...]:
    return bbox[0] * w, bbox[1] * h, bbox[2] * w, bbox[3] * h


@settings(max_examples=15, deadline=None)
@given(layout=coco_layouts())
def test_generated_geometry_round_trips(tmp_path_factory, layout):
    doc, truth = coco_doc(layout)
    out, manifest = coco_build(fresh(tmp_path_factory), layout, doc)
    s = check_accounting(out, manifest, "coco")
    assert (s["items_read"], s["items_kept"]) == (len(truth), len(truth))  # valid, disjoint: all kept
    rows = table_rows(out, "point_vqa")
    assert {int(r["target"]["instance"]) for r in rows} == set(truth)
    for r in rows:
        kind, rect, w, h = truth[int(r["target"]["instance"])]
        tol = 1.0 if kind == "polygon" else 1e-9
        got = _bbox_px(r["target"]["bbox"], w, h)
        assert max(abs(a - b) for a, b in zip(got, rect)) <= tol, (kind, rect, got)
        x, y = r["point"]["x"] * w, r["point"]["y"] * h
        assert rect[0] - tol <= x <= rect[2] + tol and rect[1] - tol <= y <= rect[3] + tol
    for g in table_rows(out, "grounding"):  # each grounding box is one of the rectangles
        sizes = {(w, h) for _, _, w, h in truth.values()}
        assert any(max(abs(a - b) for a, b in zip(_bbox_px(g["bbox"], w, h), rect)) <= 1.0
                   for _, rect, w, h in truth.values() if (w, h) in sizes)


def _row_set(out: Path) -> set[str]:
    return {json.dumps(r, sort_keys=True) for t in ("point_vqa", "grounding", "rejects") for r in table_rows(out, t)}


@settings(max_examples=8, deadline=None)
@given(layout=coco_layouts(), data=st.data())
def test_same_input_same_fingerprint_and_order_free(tmp_path_factory, layout, data):
    doc = mutated(data, coco_doc(layout)[0], max_mutations=2)
    if not _top_level_ok(doc):
        return
    a_out, a = coco_build(fresh(tmp_path_factory), layout, doc)
    b_out, b = coco_build(fresh(tmp_path_factory), layout, doc)
    assert a["fingerprint"] == b["fingerprint"]
    shuffled = copy.deepcopy(doc)
    shuffled["annotations"] = data.draw(st.permutations(doc["annotations"]), label="order")
    c_out, _ = coco_build(fresh(tmp_path_factory), layout, shuffled)
    # entries without a unique integer id are keyed by their position, which the shuffle moves
    ids = [e.get("id") if isinstance(e, dict) else None for e in doc["annotations"]]
    if all(type(i) is int for i in ids) and len(set(ids)) == len(ids):
        assert _row_set(c_out) == _row_set(a_out)


def test_annotation_order_does_not_change_the_rows(tmp_path):
    """Hypothesis' shrunk case: three boxes of one category; the reasoning rows (nearest
    neighbour) followed the list's order before instances were put in id order."""
    layout = [{"w": 24, "h": 24, "anns": [("box", (0, 0, 6, 6), 1), ("box", (12, 12, 18, 18), 1),
                                          ("box", (0, 12, 6, 18), 1)]}]
    doc, _ = coco_doc(layout)
    a_out, _ = coco_build(tmp_path / "a", layout, doc)
    doc["annotations"] = [doc["annotations"][i] for i in (1, 0, 2)]
    b_out, _ = coco_build(tmp_path / "b", layout, doc)
    assert _row_set(a_out) == _row_set(b_out) and len(table_rows(a_out, "point_vqa")) > 3
