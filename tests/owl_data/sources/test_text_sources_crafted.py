"""Text-row sources on small inputs written here: RefCOCO pickles (safe and hostile),
Visual Genome boxes, Flickr30k boxes, GQA, LLaVA, COCO captions, relation words, and the
embedded default's four tasks."""

from __future__ import annotations

import json
import os
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from owl_data.build.driver import SourceSpec, run_build
from owl_data.build.config import BuildConfig
from owl_data.generators.prompts import CAPTION_PROMPTS, POOL_VERSION, relation_expressions
from owl_data.sources import SourceError, SourceOptions
from owl_data.sources._common import majority_answer, parse_spec
from owl_data.sources.refcoco import UnsafePickle
from owl_data.sources.refcoco import read as read_refcoco
from owl_data.corpus.validate import validate_corpus


def _rows(corpus: Path, table: str) -> list[dict]:
    return [r for f in sorted((corpus / table).rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def _png(path: Path, w: int = 80, h: int = 60) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


def _build(tmp: Path, *specs: SourceSpec) -> tuple[Path, dict]:
    out = tmp / "corpus"
    m = run_build(list(specs), out, BuildConfig()).manifest
    for name, s in m["sources"].items():
        assert s["items_read"] == s["items_kept"] + s["items_rejected"], name
    rep = validate_corpus(out)
    assert rep.ok, rep.problems
    return out, m


# --- RefCOCO ------------------------------------------------------------------------------


def _refcoco(tmp: Path, refs: object) -> Path:
    d = tmp / "refcoco"
    d.mkdir()
    _png(tmp / "images" / "COCO_train2014_000000000007.png")
    (d / "instances.json").write_text(json.dumps({
        "images": [{"id": 7, "file_name": "COCO_train2014_000000000007.png", "width": 80, "height": 60}],
        "annotations": [{"id": 70, "image_id": 7, "category_id": 3, "bbox": [8, 6, 40, 30]},
                        {"id": 71, "image_id": 7, "category_id": 1, "bbox": [60, 10, 0, 20]}],
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]}))
    with open(d / "refs(unc).p", "wb") as f:
        pickle.dump(refs, f, protocol=2)
    return d


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_refcoco_pickle_that_calls_a_function_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    d = _refcoco(tmp_path, [{"ref_id": 0, "ann_id": 70, "split": "train", "sentences": [_Payload(marker)]}])
    with pytest.raises(UnsafePickle, match="refused.*system"):
        list(read_refcoco(f"{d}?images={tmp_path / 'images'}", SourceOptions("refcoco")))
    with pytest.raises(SourceError, match="refused"):
        run_build([SourceSpec("refcoco", f"{d}?images={tmp_path / 'images'}")], tmp_path / "out", BuildConfig())
    assert not marker.exists()  # nothing was executed


def test_refcoco_plain_pickle_gives_grounding_rows(tmp_path):
    refs = [
        {"ref_id": 0, "ann_id": 70, "image_id": 7, "split": "testA", "category_id": 3,
         "sentences": [{"sent": "the red car", "raw": "The red car.", "sent_id": 0},
                       {"sent": "", "raw": "car on the left", "sent_id": 1}]},
        {"ref_id": 1, "ann_id": 71, "image_id": 7, "split": "testA", "category_id": 1,
         "sentences": [{"sent": "a flat person", "sent_id": 2}]},       # zero-width box
        {"ref_id": 2, "ann_id": 999, "image_id": 7, "split": "testA", "category_id": 1,
         "sentences": [{"sent": "nobody", "sent_id": 3}]},
    ]
    d = _refcoco(tmp_path, refs)
    out, m = _build(tmp_path, SourceSpec("refcoco", f"{d}?images=../images"))
    s = m["sources"]["refcoco"]
    assert (s["items_read"], s["items_kept"]) == (4, 2)
    assert s["rejects"] == {"unknown_annotation": 1, "zero_area": 1}
    rows = _rows(out, "grounding")
    assert len(rows) == 4 and {r["split"] for r in rows} == {"testA"}  # RefCOCO's own split wins
    assert {r["expression"] for r in rows} == {"the red car", "car on the left"}
    for r in rows:
        assert r["bbox"] == pytest.approx([8 / 80, 6 / 60, 48 / 80, 36 / 60])
    assert sorted(r["conversations"][1]["content"] for r in rows)[:2] == ["<box>", "<box>"]
    assert all("<box>" in r["conversations"][0]["content"] for r in rows if r["conversations"][1]["content"] != "<box>")
    assert m["prompt_pools"] == POOL_VERSION


# --- Visual Genome ------------------------------------------------------------------------


def test_visual_genome_boxes_clipped_and_zero_area_rejected(tmp_path):
    d = tmp_path / "vg"
    _png(d / "VG_100K" / "5.png")
    os.rename(d / "VG_100K" / "5.png", d / "VG_100K" / "5.jpg")  # a PNG named .jpg: decoded by content
    regions = [{"id": 5, "regions": [
        {"region_id": 1, "image_id": 5, "x": -10, "y": 5, "width": 50, "height": 20, "phrase": "a red door"},
        {"region_id": 2, "image_id": 5, "x": 10, "y": 5, "width": 0, "height": 20, "phrase": "a line"},
        {"region_id": 3, "image_id": 5, "x": 100, "y": 5, "width": 10, "height": 10, "phrase": "far away"},
        {"region_id": 4, "image_id": 6, "x": 1, "y": 1, "width": 10, "height": 10, "phrase": "no image"},
    ]}]
    (d / "region_descriptions.json").write_text(json.dumps(regions))
    (d / "question_answers.json").write_text(json.dumps([{"id": 5, "qas": [
        {"qa_id": 9, "image_id": 5, "question": "What is red?", "answer": "The door."}]}]))
    out, m = _build(tmp_path, SourceSpec("visual_genome", str(d)))
    rej = {r["item"]: r["reason"] for r in _rows(out, "rejects")}
    assert rej == {"region:2": "zero_area", "region:3": "outside_image", "region:4": "missing_image"}
    g = _rows(out, "grounding")
    assert {r["expression"] for r in g} == {"a red door"} and len(g) == 2
    assert g[0]["bbox"] == pytest.approx([0.0, 5 / 60, 40 / 80, 25 / 60])  # clipped at x = 0
    v = _rows(out, "vqa")
    assert [t["content"] for t in v[0]["conversations"]] == ["<image>What is red?", "The door."]


# --- Flickr30k with boxes, GQA, LLaVA, COCO captions, VQA v2 ties --------------------------


def test_flickr30k_phrases_with_boxes_become_grounding_rows(tmp_path):
    d = tmp_path / "f30k"
    _png(d / "flickr30k-images" / "42.png")
    os.rename(d / "flickr30k-images" / "42.png", d / "flickr30k-images" / "42.jpg")
    (d / "Sentences").mkdir()
    (d / "Sentences" / "42.txt").write_text(
        "[/EN#1/people Two men] talk near [/EN#2/vehicles a car] .\n"
        "[/EN#1/people Two men] stand by [/EN#3/scene the street] with [/EN#0/notvisual someone] .\n")
    (d / "Annotations").mkdir()
    (d / "Annotations" / "42.xml").write_text(
        "<annotation><size><width>80</width><height>60</height></size>"
        "<object><name>1</name><bndbox><xmin>11</xmin><ymin>11</ymin><xmax>20</xmax><ymax>40</ymax></bndbox></object>"
        "<object><name>1</name><bndbox><xmin>31</xmin><ymin>6</ymin><xmax>40</xmax><ymax>30</ymax></bndbox></object>"
        "<object><name>2</name><bndbox><xmin>51</xmin><ymin>31</ymin><xmax>80</xmax><ymax>60</ymax></bndbox></object>"
        "<object><name>3</name><scene>1</scene></object></annotation>")
    (d / "test.txt").write_text("42\n")
    out, m = _build(tmp_path, SourceSpec("flickr30k", str(d)))
    assert m["sources"]["flickr30k"]["items_kept"] == 2
    g = {r["expression"]: r["bbox"] for r in _rows(out, "grounding")}
    assert g == {"two men": pytest.approx([10 / 80, 5 / 60, 40 / 80, 40 / 60]),  # union of the two boxes
                 "a car": pytest.approx([50 / 80, 30 / 60, 1.0, 1.0])}
    caps = [r["conversations"][1]["content"] for r in _rows(out, "caption")]
    assert caps == ["Two men talk near a car.", "Two men stand by the street with someone."]
    assert {r["split"] for r in _rows(out, "caption")} == {"test"}


def test_gqa_llava_coco_captions_and_vqa_ties(tmp_path):
    _png(tmp_path / "gqa" / "images" / "n1.jpg")
    (tmp_path / "gqa" / "val_balanced_questions.json").write_text(json.dumps({
        "q1": {"imageId": "n1", "question": "Is it day?", "answer": "yes", "fullAnswer": "Yes, it is day."},
        "q2": {"imageId": "n2", "question": "Where?", "answer": "here", "fullAnswer": "It is here."},
        "q3": {"imageId": "n1", "question": "What?"}}))
    _png(tmp_path / "llava" / "img" / "a.jpg")
    (tmp_path / "llava" / "instr.json").write_text(json.dumps([
        {"id": "a", "image": "a.jpg", "conversations": [
            {"from": "system", "value": "Be brief."}, {"from": "human", "value": "<image>\nWhat is it?"},
            {"from": "gpt", "value": "Noise."}, {"from": "human", "value": "Sure?"}, {"from": "gpt", "value": "Yes."}]},
        {"id": "b", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
        {"id": "c", "image": "a.jpg", "conversations": [{"from": "human", "value": "<image>Hm"}]}]))
    _png(tmp_path / "coco" / "val2017" / "000000000001.jpg")
    (tmp_path / "coco" / "annotations").mkdir(parents=True)
    (tmp_path / "coco" / "annotations" / "captions_val2017.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "000000000001.jpg", "width": 80, "height": 60}],
        "annotations": [{"id": 10, "image_id": 1, "caption": "  Random   noise. "},
                        {"id": 11, "image_id": 2, "caption": "x"}]}))
    out, m = _build(tmp_path,
                    SourceSpec("gqa", str(tmp_path / "gqa") + "?answer=full"),
                    SourceSpec("llava", str(tmp_path / "llava") + "?images=img&task=vqa"),
                    SourceSpec("coco_captions", str(tmp_path / "coco")))
    rej = {(r["source"], r["item"]): r["reason"] for r in _rows(out, "rejects")}
    assert rej == {("gqa", "q:q2"): "missing_image", ("gqa", "q:q3"): "no_answers",
                   ("llava", "instr.json:1"): "no_image", ("llava", "instr.json:2"): "malformed_conversation",
                   ("coco_captions", "captions_val2017.json:11"): "unknown_image"}
    vqa = {r["source"]: r for r in _rows(out, "vqa")}
    assert vqa["gqa"]["conversations"][1]["content"] == "Yes, it is day." and vqa["gqa"]["split"] == "val"
    conv = vqa["llava"]["conversations"]
    assert [t["role"] for t in conv] == ["system", "user", "assistant", "user", "assistant"]
    assert conv[1]["content"] == "<image>\nWhat is it?" and vqa["llava"]["answers"] == ["Noise.", "Yes."]
    cap = _rows(out, "caption")[0]
    assert cap["conversations"][0]["content"].removeprefix("<image>") in CAPTION_PROMPTS
    assert cap["conversations"][1]["content"] == "Random noise." and cap["split"] == "val"
    assert majority_answer(["b", "a", "a", "b", "c"]) == "b"  # a tie goes to the answer given first


def test_spec_options_are_checked():
    assert parse_spec("x", "/d?a=1&b=2", {"a": "", "b": ""}) == (Path("/d"), {"a": "1", "b": "2"})
    with pytest.raises(SourceError, match="unknown option 'c'.*known options: a"):
        parse_spec("x", "/d?c=1", {"a": "first"})
    with pytest.raises(SourceError, match="not key=value"):
        parse_spec("x", "/d?a", {"a": ""})


def test_relation_words():
    assert relation_expressions("car", [0.5]) == ["the car"]
    assert relation_expressions("car", [0.8, 0.2]) == ["the right car", "the left car"]
    assert relation_expressions("car", [0.1, 0.5, 0.9]) == ["the leftmost car", "the middle car", "the rightmost car"]
    assert relation_expressions("car", [0.1, 0.3, 0.6, 0.9]) == [
        "the leftmost car", "the second car from the left", "the second car from the right", "the rightmost car"]
    assert relation_expressions("car", [0.50, 0.52]) == [None, None]  # too close to tell apart


# --- the embedded default: all four tasks --------------------------------------------------


def test_default_build_has_all_four_tasks(tmp_path):
    from owl_data.sources.synthetic.scenes import write_default_sources

    pairs = write_default_sources(tmp_path / "scenes", seed=0)
    assert [n for n, _ in pairs] == ["cityscapes", "vqav2", "coco_captions", "refcoco"]
    out, m = _build(tmp_path, *(SourceSpec(n, s, synthetic=True) for n, s in pairs))
    for task in ("point_vqa", "vqa", "caption", "grounding"):
        assert sum(m["rows"][task].values()) > 0, task
    for name, s in m["sources"].items():
        assert s["synthetic"] and s["items_kept"] > 0, name
    assert m["rows"]["images"]["all"] == 5  # the COCO-named copies are the same bytes, stored once
    for r in _rows(out, "vqa"):
        counts = Counter(r["answers"])
        assert r["conversations"][1]["content"] == next(a for a in r["answers"] if counts[a] == max(counts.values()))
    # each drawn car has its own colour: the referring expressions name one box each
    per_image = Counter((r["image_id"], r["expression"]) for r in _rows(out, "grounding"))
    assert set(per_image.values()) == {2}


@pytest.mark.parametrize("frame", ["raw", "upright"])
def test_points_and_boxes_follow_exif_orientation(tmp_path, frame):
    """A point and a box of an EXIF-6 JPEG (no stated size): with ``?frame=raw`` they are in the
    raw pixel frame and land where the pixels go once the image is made upright (raw (x, y) ->
    upright (H - y, x)); with ``?frame=upright`` (the default) they are taken as drawn on the
    upright 1800x1200 image."""
    from tests.conftest import need_shared_data

    src = need_shared_data("edge_cases", "exif_Landscape_6.jpg")  # raw 1200x1800, orientation 6
    d = tmp_path / "pq"
    (d / "vg_images").mkdir(parents=True)
    (d / "vg_images" / "1.jpg").write_bytes(src.read_bytes())
    (d / "spatial_dataset.json").write_text(json.dumps(
        {"1": [{"question": "What is this?", "answer": "a thing", "point": {"x": 300, "y": 450, "ans": "a thing"}, "id": 1}]}))
    (d / "caps_boxes.jsonl").write_text(json.dumps(
        {"id": "x", "image": "vg_images/1.jpg", "captions": [], "instances": [{"category": "thing", "bbox": [0.25, 0.25, 0.5, 0.75]}]}) + "\n")
    out, m = _build(tmp_path, SourceSpec("pointingqa", f"{d}?frame={frame}"),
                    SourceSpec("llava_caps_boxes", f"{d}?frame={frame}"))
    p = _rows(out, "point_vqa")[0]["point"]
    g = _rows(out, "grounding")[0]["bbox"]
    if frame == "raw":
        assert (p["x"], p["y"]) == pytest.approx(((1800 - 450) / 1800, 300 / 1200))
        # raw box x 300..600, y 450..1350 -> upright x = 1800 - y in 450..1350, y = x in 300..600
        assert g == pytest.approx([450 / 1800, 300 / 1200, 1350 / 1800, 600 / 1200])
    else:
        assert (p["x"], p["y"]) == pytest.approx((300 / 1800, 450 / 1200))
        assert g == pytest.approx([0.25, 0.25, 0.5, 0.75])
    # no stated size on an EXIF-6 image: both images ambiguous, counted in the frame taken
    for name in ("pointingqa", "llava_caps_boxes"):
        assert m["sources"][name]["frames"] == {frame: 1, ({"raw", "upright"} - {frame}).pop(): 0, "ambiguous": 1}
