"""The build writes unified categories (owl_data.conventions.taxonomy) and keeps the source's own
as target.source_category; generated text names the unified one. Crafted scenes, then a build of
the real DriveLM and COCO samples."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from cityscapesscripts.helpers.labels import labels as CITYSCAPES_LABELS
from PIL import Image

from owl_data.build.config import BuildConfig
from owl_data.build.driver import SourceSpec, run_build
from owl_data.build.scene import process_scene
from owl_data.corpus.stats import corpus_stats
from owl_data.records import Box, ImageRef, Instance, Scene, SourceQA, TextRow
from tests.conftest import need_shared_data

CITYSCAPES = {label.name for label in CITYSCAPES_LABELS}


def _png(path: Path, size=(160, 90)) -> Path:
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(path)
    return path


def _vehicle(tag: str, desc: str, box=(10, 10, 60, 50), category="Vehicle") -> Instance:
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return Instance(instance=tag, category=category, geometry=Box(*box), item=f"f:{tag}", point=(x, y),
                    attributes={"status": "Parked", "visual_description": desc})


def test_drivelm_key_objects_get_the_kind_their_description_names(tmp_path):
    ref = ImageRef(source="drivelm", path=_png(tmp_path / "a.png"), source_path="a.png", group="s",
                   declared_size=(160, 90))
    instances = [_vehicle("<c1,CAM_FRONT,35,30>", "White truck."),
                 _vehicle("<c2,CAM_FRONT,110,60>", "Black vehicle.", box=(90, 40, 130, 80)),
                 _vehicle("<c3,CAM_FRONT,145,20>", "Green light.", box=(140, 10, 150, 30), category="Traffic element")]
    qa = [SourceQA(item="f:perception:0", question="Is <point> moving?", answer="No.", target=instances[0].instance)]
    scene = Scene(ref=ref, instances=instances, items=[i.item for i in instances] + ["f:perception:0"], qa=qa,
                  sample_points=False, grounding_from_attributes=True)
    res = process_scene(scene, BuildConfig())
    rows = res.rows["point_vqa"]
    got = {(r["target"]["instance"], r["target"]["category"], r["target"]["source_category"]) for r in rows}
    assert got == {("<c1,CAM_FRONT,35,30>", "truck", "Vehicle"), ("<c2,CAM_FRONT,110,60>", "vehicle", "Vehicle"),
                   ("<c3,CAM_FRONT,145,20>", "traffic light", "Traffic element")}
    descriptions = {r["conversations"][-1]["content"] for r in rows if r["kind"] == "description"}
    assert descriptions == {"This is a truck: a white truck. Its status is parked.",
                            "This is a vehicle: a black vehicle. Its status is parked.",
                            "This is a traffic light: a green light. Its status is parked."}
    qa_row = next(r for r in rows if r["generator"] == "source-qa/drivelm/qa")
    assert qa_row["target"]["category"] == "truck" and qa_row["target"]["source_category"] == "Vehicle"
    assert scene.instances[0].category == "Vehicle"  # the reader's record is not changed


def test_coco_grounding_expressions_name_the_unified_class(tmp_path):
    ref = ImageRef(source="coco", path=_png(tmp_path / "b.png"), source_path="b.png", group="b",
                   declared_size=(160, 90))
    rows = [TextRow(task="grounding", item="ann:1", category="stop sign", box=Box(10, 10, 40, 40)),
            TextRow(task="grounding", item="ann:2", category="motorbike", box=Box(80, 10, 120, 60))]
    res = process_scene(Scene(ref=ref, rows=rows), BuildConfig())
    exprs = {r["expression"] for r in res.rows["grounding"]}
    assert exprs == {"the traffic sign", "the motorcycle"}


def test_a_source_without_categories_keeps_its_empty_one(tmp_path):
    ref = ImageRef(source="pointingqa", path=_png(tmp_path / "c.png"), source_path="c.png", group="c",
                   declared_size=(160, 90))
    tr = TextRow(task="point_vqa", item="1:0", question="What is here?", answer="A wall.", point=(20, 20),
                 category="", generator="source-qa/pointingqa/spatial")
    (row,) = process_scene(Scene(ref=ref, rows=[tr]), BuildConfig()).rows["point_vqa"]
    assert row["target"]["category"] == "" and row["target"]["source_category"] == ""


@pytest.mark.realdata
def test_a_real_build_names_no_source_category_and_keeps_each_as_source_category(tmp_path):
    d = need_shared_data()
    specs = [SourceSpec("cityscapes", str(d / "cityscapes")),
             SourceSpec("coco", f"{d / 'coco_instances'}:{d / 'coco_instances' / 'annotations.json'}"),
             SourceSpec("drivelm", str(d / "drivelm"))]
    run_build(specs, tmp_path / "corpus", BuildConfig())
    rows = [r for f in sorted((tmp_path / "corpus" / "point_vqa").rglob("*.parquet"))
            for r in pq.read_table(f).to_pylist()]
    pairs = {(r["source"], r["target"]["source_category"], r["target"]["category"]) for r in rows}
    drivelm = {(s, u) for src, s, u in pairs if src == "drivelm"}
    # the sample's 12 key objects: 7 sedans/SUVs, 1 truck, 4 lights (tests/owl_data/conventions)
    assert drivelm == {("Vehicle", "car"), ("Vehicle", "truck"), ("Traffic element", "traffic light")}
    coco = {(s, u) for src, s, u in pairs if src == "coco"}
    assert coco >= {("person", "person"), ("bus", "bus")} and all(s == u or (s, u) == ("sofa", "couch")
                                                                  for s, u in coco)
    assert all(u in CITYSCAPES or u in {"bottle", "chair", "couch"} for _, _, u in pairs), pairs
    cityscapes = {(s, u) for src, s, u in pairs if src == "cityscapes"}
    assert len(cityscapes) >= 5 and all(s == u and u in CITYSCAPES for s, u in cityscapes)  # the base as it is
    stats = {c for c, *_ in corpus_stats(tmp_path / "corpus")["categories"]}
    assert stats == {u for _, _, u in pairs} and {"car", "truck", "traffic light", "couch"} <= stats
    text = " ".join(t["content"] for r in rows for t in r["conversations"] if t["role"] == "assistant"
                    and r["generator"].startswith("annotated"))
    assert not re.search(r"\b(Vehicle|vehicle|Traffic element|traffic element)\b", text), text[:300]


@pytest.mark.realdata
def test_question_only_rows_get_the_kind_of_their_key_object(tmp_path):
    """A question-only (evaluation) file's QA rows name key objects of another file: they carry the
    object's description, so they get the same unified category as the training file's rows."""
    from tests.owl_data.sources.test_drivelm import _with_question_only_file

    root, _, _ = _with_question_only_file(tmp_path)
    run_build([SourceSpec("drivelm", str(root))], tmp_path / "corpus", BuildConfig())
    rows = [r for f in sorted((tmp_path / "corpus" / "point_vqa").rglob("*.parquet"))
            for r in pq.read_table(f).to_pylist()]
    per_object: dict[str, set[str]] = {}
    for r in rows:
        per_object.setdefault(r["target"]["instance"], set()).add(r["target"]["category"])
    assert len(rows) > 300 and all(len(c) == 1 for c in per_object.values()), per_object
    assert set().union(*per_object.values()) == {"car", "truck", "traffic light"}
