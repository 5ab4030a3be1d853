"""The text-row sources built end to end from ../shared/data (issue 3, "Sources").

Each source's items are counted here independently of the readers, straight from the
files; per source, items kept + rejected must equal that count, and at least one is kept.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from owl_data.build.driver import SourceSpec, run_build
from owl_data.build.config import BuildConfig
from owl_data.corpus.validate import validate_corpus
from tests.conftest import need_shared_data

pytestmark = pytest.mark.realdata


def _rows(corpus: Path, table: str) -> list[dict]:
    return [r for f in sorted((corpus / table).rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def _expected_items(d: Path) -> dict[str, int]:
    vqa = len(json.loads((d / "vqav2/annotations/questions.json").read_text())["questions"])
    flickr = sum(len((d / "flickr30k/sentences" / f).read_text().splitlines())
                 for f in sorted(p.name for p in (d / "flickr30k/sentences").glob("*.txt")))
    point = sum(len(v) for v in json.loads((d / "pointingqa/spatial_dataset.json").read_text()).values())
    sg = len(json.loads((d / "sharegpt/chat.json").read_text()))
    sg += sum(1 for line in (d / "sharegpt/chat_content_parts.jsonl").read_text().splitlines() if line.strip())
    caps = 0
    for f in ("caps_boxes_local.jsonl", "caps_boxes_coco2014_val_80.jsonl"):
        for line in (d / "llava" / f).read_text().splitlines():
            if line.strip():
                o = json.loads(line)
                caps += len(o["captions"]) + len(o["instances"])
    return {"vqav2": vqa, "flickr30k": flickr, "pointingqa": point, "sharegpt": sg, "llava_caps_boxes": caps}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = need_shared_data()
    out = tmp_path_factory.mktemp("text_sources") / "corpus"
    specs = [SourceSpec("vqav2", str(d / "vqav2")), SourceSpec("flickr30k", str(d / "flickr30k")),
             SourceSpec("pointingqa", str(d / "pointingqa")), SourceSpec("sharegpt", str(d / "sharegpt")),
             SourceSpec("llava_caps_boxes", str(d / "llava"))]
    run_build(specs, out, BuildConfig())
    return out


def test_accounting_per_source(corpus):
    m = json.loads((corpus / "manifest.json").read_text())
    want = _expected_items(need_shared_data())
    for name, n in want.items():
        s = m["sources"][name]
        assert s["items_read"] == n, name
        assert s["items_kept"] + s["items_rejected"] == n, name
        assert s["items_kept"] >= 1, name
    rejects = Counter((r["source"], r["reason"]) for r in _rows(corpus, "rejects"))
    # the 80-row COCO file has no images here: every one of its items is a missing-image reject
    coco80 = sum(len(json.loads(l)["captions"]) + len(json.loads(l)["instances"])
                 for l in (need_shared_data("llava") / "caps_boxes_coco2014_val_80.jsonl").read_text().splitlines()
                 if l.strip())
    assert rejects[("llava_caps_boxes", "missing_image")] == coco80
    assert m["sources"]["llava_caps_boxes"]["items_kept"] == want["llava_caps_boxes"] - coco80
    assert rejects[("sharegpt", "multi_image")] == 1 and rejects[("sharegpt", "missing_image")] == 1
    assert validate_corpus(corpus).ok, validate_corpus(corpus).problems


def test_vqav2_majority_answer_on_every_row(corpus):
    d = need_shared_data("vqav2", "annotations")
    questions = {q["question"]: q["question_id"] for q in json.loads((d / "questions.json").read_text())["questions"]}
    answers = {a["question_id"]: [x["answer"] for x in a["answers"]]
               for a in json.loads((d / "annotations.json").read_text())["annotations"]}
    rows = [r for r in _rows(corpus, "vqa") if r["source"] == "vqav2"]
    assert len(rows) == len(questions)
    for r in rows:
        user, assistant = r["conversations"][0]["content"], r["conversations"][1]["content"]
        given = answers[questions[user.removeprefix("<image>")]]
        counts = Counter(given)
        best = max(counts.values())
        assert assistant == next(a for a in given if counts[a] == best)  # ties: the first given
        assert r["answers"] == given
        assert r["split"] == "train"  # data_subtype train2014


def test_pointingqa_points_are_source_pixels_over_image_size(corpus):
    d = need_shared_data("pointingqa")
    src = json.loads((d / "spatial_dataset.json").read_text())
    rows = [r for r in _rows(corpus, "point_vqa") if r["source"] == "pointingqa"]
    assert rows
    for r in rows:
        iid, k = r["target"]["instance"].split(":")
        e = src[iid][int(k)]
        w, h = Image.open(d / "vg_images" / f"{iid}.jpg").size
        assert r["point"]["x"] == pytest.approx(e["point"]["x"] / w, abs=1e-12)
        assert r["point"]["y"] == pytest.approx(e["point"]["y"] / h, abs=1e-12)
        assert r["point_origin"] == "annotated"
        assert r["conversations"][0]["content"] == "<image><point>" + e["question"]
        assert r["conversations"][1]["content"] == e["answer"]


def test_sharegpt_layouts_system_turns_and_image_marks(corpus):
    rows = [r for r in _rows(corpus, "vqa") if r["source"] == "sharegpt"]
    assert len(rows) == 7
    system = [r for r in rows if r["conversations"][0]["role"] == "system"]
    assert len(system) == 1 and system[0]["conversations"][0]["content"] == "You are a helpful assistant."
    for r in rows:
        users = [t["content"] for t in r["conversations"] if t["role"] == "user"]
        assert sum(u.count("<image>") for u in users) == 1
    parts = {r["conversations"][0]["content"] for r in rows}
    assert "<image>What colour is the player's shirt?" in parts  # content-parts layout, image first
    assert "Is the water calm or rough?<image>" in parts          # image part after the text


def test_flickr30k_captions_without_markup(corpus):
    rows = [r for r in _rows(corpus, "caption") if r["source"] == "flickr30k"]
    assert len(rows) == 25
    for r in rows:
        cap = r["conversations"][1]["content"]
        assert "[/EN#" not in cap and "]" not in cap and not cap.endswith(" .")
    assert any(r["conversations"][1]["content"] ==
               "A girl with brown hair sits on the edge of a cement area overlooking water." for r in rows)


def test_llava_caps_boxes_grounding_both_ways(corpus):
    rows = [r for r in _rows(corpus, "grounding") if r["source"] == "llava_caps_boxes"]
    ref = {r["expression"]: r["bbox"] for r in rows if r["conversations"][-1]["content"] == "<box>"}
    region = [r for r in rows if "<box>" in r["conversations"][0]["content"]]
    assert len(region) == len(ref) == 5
    # two cars in extreme_ironing: named by position; boxes are already normalised
    assert ref["the left car"] == pytest.approx([0.0, 0.41, 0.45, 0.75])
    assert ref["the right car"] == pytest.approx([0.47, 0.27, 1.0, 0.89])
    assert ref["the person"] == pytest.approx([0.43, 0.12, 0.67, 0.72])
    assert {r["conversations"][-1]["content"] for r in region} == set(ref)
