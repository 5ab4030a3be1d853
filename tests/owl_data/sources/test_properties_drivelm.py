"""Property tests (hypothesis) of the DriveLM reader through the real build path.

- Accounting: a folder holding a training file, maybe a question-only (evaluation) file sharing
  its scenes, and maybe a FIFO named ``*.json``, each file randomly mutated (see
  :func:`tests.owl_data.sources.test_properties_coco.mutated`), never crashes the build: either
  the documented ``SourceError`` (no file in the DriveLM layout at all) or a corpus whose
  accounting adds up, every reject with a reason, the FIFO one ``not_a_regular_file`` row.
- Round trip: key objects drawn with a box inside the 1600x900 camera image and a point (one
  decimal, as DriveLM writes them) inside the box come back as point_vqa rows at exactly that
  point and box (divided by 1600 and 900), every key object and every QA kept.
- Determinism: the same folder twice gives the same fingerprint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from owl_data.build.config import BuildConfig
from owl_data.build.driver import SourceSpec, run_build
from owl_data.sources import SourceError
from tests.helpers import fails_after
from tests.owl_data.helpers import table_rows
from tests.owl_data.sources.test_properties_coco import check_accounting, fresh, mutated

W, H = 1600, 900
CAMERAS = ("CAM_FRONT", "CAM_BACK")
CATEGORIES = ("Vehicle", "Pedestrian", "Traffic element")
UNIFIED = {"Vehicle": "car", "Pedestrian": "person", "Traffic element": "traffic element"}
"""The unified name of each category for the description "Red car." (owl_data/conventions/taxonomy.yaml)."""


@st.composite
def drivelm_layouts(draw) -> list[dict]:
    """Scenes of frames of key objects: (tag, camera, box x1, y1, x2, y2, point x, y), tags unique."""
    scenes, n = [], 0
    for s in range(draw(st.integers(1, 2))):
        frames = []
        for f in range(draw(st.integers(1, 2))):
            objects = []
            for _ in range(draw(st.integers(1, 3))):
                n += 1
                cam = draw(st.sampled_from(CAMERAS))
                x1, y1 = draw(st.integers(0, W - 40)), draw(st.integers(0, H - 40))
                x2, y2 = draw(st.integers(x1 + 20, W)), draw(st.integers(y1 + 20, H))
                px = draw(st.integers(x1 * 10, x2 * 10)) / 10  # one decimal, inside the box
                py = draw(st.integers(y1 * 10, y2 * 10)) / 10
                objects.append({"tag": f"<c{n},{cam},{px:.1f},{py:.1f}>", "cam": cam, "box": (x1, y1, x2, y2),
                                "point": (px, py), "category": draw(st.sampled_from(CATEGORIES))})
            frames.append({"token": f"frame{s}{f}", "objects": objects})
        scenes.append({"token": f"scene{s}", "frames": frames})
    return scenes


def _key_frame(frame: dict) -> dict:
    infos = {o["tag"]: {"Category": o["category"], "Status": "Moving", "Visual_description": "Red car.",
                        "2d_bbox": list(o["box"])} for o in frame["objects"]}
    qa = {"perception": [{"Q": f"What is {o['tag']}?", "A": "A car."} for o in frame["objects"]],
          "planning": [{"Q": "What now?", "A": f"Mind {frame['objects'][0]['tag']}."}]}
    paths = {c: f"../samples/{frame['token']}_{c}.png" for c in CAMERAS if any(o["cam"] == c for o in frame["objects"])}
    return {"key_object_infos": infos, "QA": qa, "image_paths": paths}


def drivelm_doc(layout: list[dict], question_only: bool = False) -> dict:
    """The training document of a layout, or its question-only twin (QA and image_paths only)."""
    doc: dict = {}
    for scene in layout:
        frames = {}
        for fr in scene["frames"]:
            kf = _key_frame(fr)
            frames[fr["token"]] = {"QA": kf["QA"], "image_paths": kf["image_paths"]} if question_only else kf
        doc[scene["token"]] = {"scene_description": "A street.", "key_frames": frames}
    return doc


def drivelm_build(folder: Path, layout: list[dict], docs: dict[str, Any], fifo: bool = False) -> tuple[Path, dict]:
    """Write the camera images (solid 1600x900 PNGs), ``docs`` (file name -> document) under
    ``folder/drivelm/data`` and maybe a FIFO ``data/pipe.json``; build; (corpus, manifest)."""
    root = folder / "drivelm"
    (root / "data").mkdir(parents=True)
    (root / "samples").mkdir()
    for k, scene in enumerate(layout):
        for j, fr in enumerate(scene["frames"]):
            for c, cam in enumerate(CAMERAS):
                if any(o["cam"] == cam for o in fr["objects"]):
                    Image.new("RGB", (W, H), (40 * k + 20, 60 * j + 30, 100 * c + 50)).save(
                        root / "samples" / f"{fr['token']}_{cam}.png")
    for name, doc in docs.items():
        (root / "data" / name).write_text(json.dumps(doc))
    if fifo:
        os.mkfifo(root / "data" / "pipe.json")
    out = folder / "out"
    with fails_after(60, "a DriveLM build"):
        return out, run_build([SourceSpec("drivelm", str(root))], out, BuildConfig()).manifest


def _has_layout(doc: Any) -> bool:
    """The reader's documented condition for a file to be read as DriveLM."""
    return isinstance(doc, dict) and bool(doc) and all(
        isinstance(v, dict) and isinstance(v.get("key_frames"), dict) for v in doc.values())


@settings(max_examples=20, deadline=None)
@given(layout=drivelm_layouts(), with_eval=st.booleans(), fifo=st.booleans(), data=st.data())
def test_mutated_folders_are_fully_accounted(tmp_path_factory, layout, with_eval, fifo, data):
    docs = {"train.json": mutated(data, drivelm_doc(layout))}
    if with_eval:
        docs["test_eval.json"] = mutated(data, drivelm_doc(layout, question_only=True))
    folder = fresh(tmp_path_factory)
    if not any(_has_layout(d) for d in docs.values()):
        with pytest.raises(SourceError, match="no DriveLM file"):
            drivelm_build(folder, layout, docs, fifo)
        return
    out, manifest = drivelm_build(folder, layout, docs, fifo)
    check_accounting(out, manifest, "drivelm")
    rejects = {r["item"]: r["reason"] for r in table_rows(out, "rejects")}
    assert (rejects.get("data/pipe.json") == "not_a_regular_file") == fifo
    for name, doc in docs.items():
        if not _has_layout(doc):
            assert rejects[f"data/{name}"] == "not_a_drivelm_file"


def _items(layout: list[dict]) -> int:
    """Key objects + QA entries (one perception QA per object, one planning QA per frame)."""
    return sum(2 * len(fr["objects"]) + 1 for s in layout for fr in s["frames"])


@settings(max_examples=10, deadline=None)
@given(layout=drivelm_layouts())
def test_generated_points_and_boxes_round_trip(tmp_path_factory, layout):
    out, manifest = drivelm_build(fresh(tmp_path_factory), layout, {"train.json": drivelm_doc(layout)})
    s = check_accounting(out, manifest, "drivelm")
    assert s["items_read"] == s["items_kept"] == _items(layout)
    truth = {o["tag"]: o for sc in layout for fr in sc["frames"] for o in fr["objects"]}
    rows = table_rows(out, "point_vqa")
    assert {r["target"]["instance"] for r in rows} == set(truth)
    for r in rows:
        o = truth[r["target"]["instance"]]
        assert r["point_origin"] == "annotated" and r["target"]["source_category"] == o["category"]
        assert r["target"]["category"] == UNIFIED[o["category"]]  # every object is a "Red car."
        assert (r["point"]["x"] * W, r["point"]["y"] * H) == pytest.approx(o["point"], abs=1e-6)
        assert [v * d for v, d in zip(r["target"]["bbox"], (W, H, W, H))] == pytest.approx(o["box"], abs=1e-6)
    boxes = sorted(tuple(round(v * d, 6) for v, d in zip(g["bbox"], (W, H, W, H))) for g in table_rows(out, "grounding"))
    assert boxes == sorted(tuple(float(v) for v in o["box"]) for o in truth.values())  # one per key object


@settings(max_examples=4, deadline=None)
@given(layout=drivelm_layouts(), data=st.data())
def test_same_folder_same_fingerprint(tmp_path_factory, layout, data):
    docs = {"train.json": mutated(data, drivelm_doc(layout), max_mutations=2),
            "test_eval.json": drivelm_doc(layout, question_only=True)}
    _, a = drivelm_build(fresh(tmp_path_factory), layout, docs)
    _, b = drivelm_build(fresh(tmp_path_factory), layout, docs)
    assert a["fingerprint"] == b["fingerprint"]


_ONE = [{"token": "scene0", "frames": [{"token": "frame00", "objects": [
    {"tag": "<c1,CAM_FRONT,50.5,60.0>", "cam": "CAM_FRONT", "box": (10, 20, 100, 120), "point": (50.5, 60.0),
     "category": "Vehicle"}]}]}]


def test_fifo_named_json_is_a_counted_reject(tmp_path):
    """A FIFO named ``*.json`` is refused at once (never waited on) and is a reject row of its
    own (``not_a_regular_file``); before, the listing skipped it unseen."""
    out, manifest = drivelm_build(tmp_path, _ONE, {"train.json": drivelm_doc(_ONE)}, fifo=True)
    s = check_accounting(out, manifest, "drivelm")
    assert (s["items_read"], s["items_kept"], s["rejects"]) == (_items(_ONE) + 1, _items(_ONE),
                                                                {"not_a_regular_file": 1})
    (row,) = table_rows(out, "rejects")
    assert (row["item"], row["stage"]) == ("data/pipe.json", "read") and "is a FIFO" in row["detail"]
    (tmp_path / "drivelm" / "data" / "train.json").unlink()  # the FIFO alone: no DriveLM file at all
    with fails_after(10, "reading a FIFO"), pytest.raises(SourceError, match="pipe.json: cannot be read"):
        run_build([SourceSpec("drivelm", str(tmp_path / "drivelm"))], tmp_path / "out2", BuildConfig())


_T = "<c1,CAM_FRONT,50.5,60.0>"


def _kf(d: dict) -> dict:
    return d["scene0"]["key_frames"]["frame00"]


@pytest.mark.parametrize("edit, prefix", [  # lone surrogates (JSON "\\udcff"): the build failed writing them
    (lambda d: _kf(d)["key_object_infos"][_T].update(Visual_description="Red\udcff car."), "frame00"),
    (lambda d: _kf(d)["key_object_infos"][_T].update(Category="Veh\udcff"), "frame00"),
    (lambda d: _kf(d)["QA"]["perception"][0].update(A="A\ud800"), "frame00"),
    (lambda d: _kf(d)["QA"].update({"fam\udcff": [{"Q": "x", "A": "y"}]}), "frame00"),
    (lambda d: _kf(d)["key_object_infos"].update({"<c9,CAM_FRONT,1,1>\udcff": {}}), "frame00"),
    (lambda d: d["scene0"]["key_frames"].update({"fr\udcff": d["scene0"]["key_frames"].pop("frame00")}),
     "fr\\udcff"),
    (lambda d: d.update({"sc\udcff": d.pop("scene0")}), "frame00"),
])
def test_text_the_corpus_cannot_hold_rejects_the_frame(tmp_path, edit, prefix):
    doc = drivelm_doc(_ONE)
    edit(doc)
    out, manifest = drivelm_build(tmp_path, _ONE, {"train.json": doc})
    s = check_accounting(out, manifest, "drivelm")
    rejects = table_rows(out, "rejects")
    assert s["items_kept"] == 0 and {r["reason"] for r in rejects} == {"malformed_frame"}
    assert all(r["item"].startswith(prefix + ":") and "not valid Unicode" in r["detail"] for r in rejects)
    assert s["items_read"] == _items(_ONE) + ("fam" in str(doc) or "<c9" in str(doc))


def test_question_only_frame_whose_key_objects_hold_bad_text(tmp_path):
    doc = drivelm_doc(_ONE)
    _kf(doc)["key_object_infos"][_T]["Visual_description"] = "Red\udcff car."
    out, manifest = drivelm_build(tmp_path, _ONE, {"train.json": doc,
                                                   "test_eval.json": drivelm_doc(_ONE, question_only=True)})
    check_accounting(out, manifest, "drivelm")
    rejects = {r["item"]: r["reason"] for r in table_rows(out, "rejects")}
    assert rejects == {**{f"frame00:{k}": "malformed_frame" for k in (_T, "perception:0", "planning:0")},
                       **{f"frame00@data/test_eval.json:{k}": "malformed_frame" for k in ("perception:0", "planning:0")}}
