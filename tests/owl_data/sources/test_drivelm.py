"""Tests for the DriveLM reader (owl_data.sources.drivelm)."""

from __future__ import annotations

import json
import re

import pytest

from owl_data.records import Box, Scene
from owl_data.sources import SourceError, SourceOptions, get_reader
from owl_data.sources.drivelm import TAG_RE, object_phrase, parse_tag, read
from tests.conftest import need_shared_data, split_records as _split

OPTS = SourceOptions(name="drivelm")






def _accounted(scenes, rejects):
    keys = [k for s in scenes for k in s.items + [tr.item for tr in s.rows]] + [r.item for r in rejects]
    assert len(keys) == len(set(keys)), "an item was accounted twice"
    return set(keys)


def test_parse_tag_and_phrase():
    assert parse_tag("<c1,CAM_BACK,1088.3,497.5>") == ("CAM_BACK", 1088.3, 497.5)
    assert parse_tag("<c12,CAM_FRONT_LEFT,-3,0.5>") == ("CAM_FRONT_LEFT", -3.0, 0.5)
    for bad in ("<c1,CAM_BACK,x,2>", "<c1,BACK,1,2>", "<c1,CAM_BACK,1,2", "<c1,CAM_BACK,nan,2>"):
        assert parse_tag(bad) is None
    assert object_phrase("Brown SUV.") == "the brown SUV"
    assert object_phrase("SUV parked.") == "the SUV parked"
    assert object_phrase("A white truck.") == "the white truck"
    assert object_phrase("", "Vehicle") == "the vehicle"
    assert object_phrase("") == "the object"


@pytest.mark.realdata
def test_real_sample():
    root = need_shared_data("drivelm")
    raw = json.loads((root / "data" / "train_sample.json").read_text())
    scenes, rejects = _split(list(read(str(root), OPTS)))

    expected = set()
    for body in raw.values():
        for frame, kf in body["key_frames"].items():
            expected |= {f"{frame}:{tag}" for tag in kf["key_object_infos"]}
            expected |= {f"{frame}:{fam}:{i}" for fam, qs in kf["QA"].items() for i in range(len(qs))}
    assert _accounted(scenes, rejects) == expected  # items read = kept + rejected, exactly

    n_objects = 0
    for s in scenes:
        assert s.ref.declared_size == (1600, 900) and s.ref.source == "drivelm"
        assert s.ref.group in raw and s.ref.path.is_file()
        assert s.ref.source_path.startswith("nuscenes/samples/")
        assert not s.sample_points and s.grounding_from_attributes
        for inst in s.instances:
            n_objects += 1
            m = TAG_RE.fullmatch(inst.instance)
            assert inst.point == (float(m.group(3)), float(m.group(4)))
            assert f"__{m.group(2)}__" in s.ref.source_path  # the tag's camera image
            assert isinstance(inst.geometry, Box) and inst.kind == "thing"
            assert inst.attributes["visual_description"]
        tags = {i.instance for i in s.instances}
        for qa in s.qa:
            assert qa.target in tags and qa.item in s.items
            assert "<c" not in qa.question and "<c" not in qa.answer
            assert "<point>" not in qa.answer
            assert qa.question.count("<point>") <= 1
    assert n_objects == sum(len(kf["key_object_infos"]) for b in raw.values() for kf in b["key_frames"].values())
    # no row states an object of another camera: a QA is kept only when all its tags name the
    # scene's camera; every QA whose tags name two cameras (recounted from the JSON) is cross_camera
    entries = {f"{f}:{fam}:{i}": e for b in raw.values() for f, kf in b["key_frames"].items()
               for fam, qs in kf["QA"].items() for i, e in enumerate(qs)}
    cams = {k: {m.group(2) for m in TAG_RE.finditer(e["Q"] + e["A"])} for k, e in entries.items()}
    for s in scenes:
        camera = re.search(r"__(CAM_[A-Z_]+)__", s.ref.source_path).group(1)
        assert all(cams[qa.item] == {camera} for qa in s.qa)
    assert {r.item for r in rejects if r.reason == "cross_camera"} == {k for k, c in cams.items() if len(c) > 1}
    assert sum(len(c) > 1 for c in cams.values()) == 28  # of the 180 QA that name a tag
    assert {r.reason for r in rejects} == {"no_point_tag", "cross_camera"}

    # a QA naming two tags is a row on the first; the other becomes its phrase
    qas = {qa.item: qa for s in scenes for qa in s.qa}
    frame = next(f for b in raw.values() for f, kf in b["key_frames"].items()
                 if "<c2,CAM_BACK,864.2,468.3>" in kf["key_object_infos"])
    multi = qas[f"{frame}:prediction:14"]
    assert raw_q(raw, frame, "prediction", 14) == (
        "Will <c1,CAM_BACK,1088.3,497.5> be in the moving direction of <c2,CAM_BACK,864.2,468.3>?")
    assert multi.question == "Will <point> be in the moving direction of the black sedan?"
    assert multi.question.count("<point>") == 1 and multi.target == "<c1,CAM_BACK,1088.3,497.5>"
    assert multi.family == "prediction" and multi.answer == "No."
    # the target named only in the answer: the question stays as written
    rel = qas[f"{frame}:perception:23"]
    assert rel.target == "<c2,CAM_BACK,864.2,468.3>"
    assert rel.answer == "The black sedan is at the back of the brown SUV."


def raw_q(raw, frame, family, index):
    for body in raw.values():
        if frame in body["key_frames"]:
            return body["key_frames"][frame]["QA"][family][index]["Q"]
    raise KeyError(frame)


T1 = "<c1,CAM_BACK,10.0,20.0>"
T2 = "<c2,CAM_BACK,30.5,40.5>"
T3 = "<c3,CAM_FRONT,5,5>"
BAD = "<c4,CAM_BACK,ten,20>"
OUT = "<c5,CAM_FRONT_LEFT,1,1>"
NOPATH = "<c6,CAM_BACK_RIGHT,1,1>"


def _obj(desc, box=(0, 0, 50, 50)):
    return {"Category": "Vehicle", "Status": None, "Visual_description": desc, "2d_bbox": list(box)}


@pytest.fixture()
def crafted(tmp_path):
    root = tmp_path / "drivelm"
    (root / "data").mkdir(parents=True)
    (root / "samples").mkdir()
    (root / "samples" / "back.jpg").write_bytes(b"not decoded by the reader")
    (tmp_path / "outside.jpg").write_bytes(b"outside")
    frame = {
        "key_object_infos": {T1: _obj("Brown SUV."), T2: _obj("Black sedan."), T3: _obj("Green light."),
                             BAD: _obj("Red car."), OUT: _obj("Bus."), NOPATH: _obj("Van.")},
        "QA": {
            "perception": [
                {"Q": f"What is {T1}?", "A": "A brown SUV."},
                {"Q": f"Is {T2} behind {T1}?", "A": f"Yes, {T2} follows {T1}."},
                {"Q": "Describe the scene.", "A": "A street."},
                {"Q": f"What is {BAD}?", "A": "A car."},
                {"Q": f"Where is {OUT}?", "A": "Left."},
                {"Q": f"Is <c9,CAM_BACK,1,1> near {T1}?", "A": "No."},
                {"Q": 3, "A": "No."},
                {"Q": f"What is {T3}?", "A": "Light."},
                {"Q": f"Where is {NOPATH}?", "A": "Right."},
            ],
            "planning": [{"Q": "What now?", "A": f"{T1}. Then {T2}."}],
        },
        "image_paths": {"CAM_BACK": "../samples/back.jpg", "CAM_FRONT": "../samples/front.jpg",
                        "CAM_FRONT_LEFT": "../../outside.jpg"},
    }
    data = {"scene1": {"scene_description": "x", "key_frames": {"f1": frame}}}
    (root / "data" / "a.json").write_text(json.dumps(data))
    return root


def test_crafted_rejects_and_rewrites(crafted):
    scenes, rejects = _split(list(read(str(crafted), OPTS)))
    reasons = {r.item: r.reason for r in rejects}
    assert reasons == {
        f"f1:{BAD}": "bad_tag",
        f"f1:{OUT}": "path_outside_source",
        f"f1:{T3}": "missing_image",
        f"f1:{NOPATH}": "missing_image",
        "f1:perception:2": "no_point_tag",
        "f1:perception:3": "bad_tag",
        "f1:perception:4": "path_outside_source",
        "f1:perception:5": "unknown_tag",
        "f1:perception:6": "malformed_qa",
        "f1:perception:7": "missing_image",
        "f1:perception:8": "missing_image",
    }
    assert len(scenes) == 1
    (s,) = scenes
    assert s.ref.source_path == "samples/back.jpg" and s.ref.group == "scene1"
    assert [i.instance for i in s.instances] == [T1, T2]
    assert s.instances[1].point == (30.5, 40.5) and s.instances[1].geometry == Box(0.0, 0.0, 50.0, 50.0)
    assert s.instances[0].attributes == {"status": "", "visual_description": "Brown SUV."}
    assert _accounted(scenes, rejects) == {f"f1:{t}" for t in (T1, T2, T3, BAD, OUT, NOPATH)} | {
        f"f1:perception:{i}" for i in range(9)} | {"f1:planning:0"}
    qa = {q.item: q for q in s.qa}
    assert qa["f1:perception:0"].question == "What is <point>?"
    assert qa["f1:perception:1"].question == "Is <point> behind the brown SUV?"
    assert qa["f1:perception:1"].answer == "Yes, the black sedan follows the brown SUV."
    assert qa["f1:perception:1"].target == T2
    assert qa["f1:planning:0"].question == "What now?"
    assert qa["f1:planning:0"].answer == "The brown SUV. Then the black sedan."
    assert qa["f1:planning:0"].target == T1 and qa["f1:planning:0"].family == "planning"


def test_duplicate_frames_read_once_and_other_files_rejected(crafted, tmp_path):
    (crafted / "data" / "b.json").write_text((crafted / "data" / "a.json").read_text())
    scenes, rejects = _split(list(read(str(crafted), OPTS)))
    _accounted(scenes, rejects)  # no item twice
    n_scenes = len(scenes)
    for text in (json.dumps([{"token": "x"}]), "{"):  # a nuScenes-like table, broken JSON
        (crafted / "data" / "c.json").write_text(text)
        scenes, rejects = _split(list(read(str(crafted), OPTS)))
        assert len(scenes) == n_scenes
        assert [(r.item, r.reason) for r in rejects if r.item.endswith("c.json")] == [
            ("data/c.json", "not_a_drivelm_file")]
    only = tmp_path / "only_other"
    only.mkdir()
    (only / "x.json").write_text("{}")
    with pytest.raises(SourceError, match="no DriveLM file"):
        list(read(str(only), OPTS))
    with pytest.raises(SourceError):
        list(read(str(tmp_path / "nowhere"), OPTS))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError):
        list(read(str(empty), OPTS))


def test_registered():
    assert get_reader("drivelm") is read
    assert re.fullmatch(TAG_RE, T1)


def _with_question_only_file(tmp_path):
    """The real sample plus ``data/test_eval.json``: the same scene and frames, question-only
    (every QA of the training file, the first key frame's perception list cut to 5, and
    ``image_paths``; no ``key_object_infos``). Sorted, the question-only file comes first."""
    import shutil

    real = need_shared_data("drivelm")
    root = tmp_path / "drivelm"
    shutil.copytree(real, root)
    raw = json.loads((root / "data" / "train_sample.json").read_text())
    q_only = {}
    for scene, body in raw.items():
        frames = {}
        for n, (frame, kf) in enumerate(body["key_frames"].items()):
            qa = {fam: list(qs) for fam, qs in kf["QA"].items()}
            if n == 0:
                qa["perception"] = qa["perception"][:5]
            frames[frame] = {"QA": qa, "image_paths": kf["image_paths"]}
        q_only[scene] = {"scene_description": body["scene_description"], "key_frames": frames}
    (root / "data" / "test_eval.json").write_text(json.dumps(q_only))
    return root, raw, q_only


@pytest.mark.realdata
def test_question_only_file_beside_the_training_file(tmp_path):
    import pyarrow.parquet as pq

    from owl_data.build.config import BuildConfig
    from owl_data.build.driver import SourceSpec, run_build
    from owl_data.corpus.validate import validate_corpus

    root, raw, q_only = _with_question_only_file(tmp_path)
    scenes, rejects = _split(list(read(str(root), OPTS)))
    train_items = {f"{f}:{t}" for b in raw.values() for f, kf in b["key_frames"].items() for t in kf["key_object_infos"]}
    train_items |= {f"{f}:{fam}:{i}" for b in raw.values() for f, kf in b["key_frames"].items()
                    for fam, qs in kf["QA"].items() for i in range(len(qs))}
    eval_items = {f"{f}@data/test_eval.json:{fam}:{i}" for b in q_only.values() for f, kf in b["key_frames"].items()
                  for fam, qs in kf["QA"].items() for i in range(len(qs))}
    assert len(train_items) == 323 and len(eval_items) == 323 - 12 - 30  # 12 key objects, 30 QA cut
    assert _accounted(scenes, rejects) == train_items | eval_items  # every item of both files, once
    assert {s.ref.split for s in scenes} == {"test"}  # the scene is held out, from both files
    # a question-only QA has the outcome of its training twin: the same tags, the same key objects
    twin = {r.item.replace("@data/test_eval.json", ""): r.reason for r in rejects if "@" in r.item}
    assert twin == {r.item: r.reason for r in rejects if "@" not in r.item and r.item in twin}

    single = run_build([SourceSpec("drivelm", str(need_shared_data("drivelm")))], tmp_path / "one", BuildConfig())
    both = run_build([SourceSpec("drivelm", str(root))], tmp_path / "two", BuildConfig())
    s1, s2 = single.manifest["sources"]["drivelm"], both.manifest["sources"]["drivelm"]
    assert s2["items_read"] == len(train_items | eval_items) == s2["items_kept"] + s2["items_rejected"]
    rej = {r["item"]: r["reason"] for r in pq.read_table(tmp_path / "two" / "rejects").to_pylist()}
    rej1 = {r["item"]: r["reason"] for r in pq.read_table(tmp_path / "one" / "rejects").to_pylist()}
    assert {k: v for k, v in rej.items() if "@" not in k} == rej1  # the training file as alone
    assert s2["items_kept"] == s1["items_kept"] + (len(eval_items) - (len(rej) - len(rej1)))
    assert set(both.manifest["rows"]["point_vqa"]) == set(both.manifest["rows"]["grounding"]) == {"test"}
    rep = validate_corpus(tmp_path / "two")
    assert rep.ok, rep.problems
    assert both.manifest["rows"]["point_vqa"]["test"] == sum(single.manifest["rows"]["point_vqa"].values()) + (
        len(eval_items) - (len(rej) - len(rej1)))  # one reasoning row per kept question-only QA
    with pytest.raises(SourceError, match="eval_split"):
        list(read(f"{root}?eval_split=../x", OPTS))
    assert {s.ref.split for s in read(f"{root}?eval_split=val", OPTS) if isinstance(s, Scene)} == {"val"}


def test_a_json_file_as_the_spec_says_to_give_its_folder(tmp_path):
    f = tmp_path / "train_sample.json"
    f.write_text("{}")
    with pytest.raises(SourceError, match=rf"drivelm={re.escape(str(f))} is a file: give the folder .* "
                                          rf"\(e\.g\. drivelm={re.escape(str(tmp_path))}\)"):
        list(read(str(f), SourceOptions(name="drivelm")))
    with pytest.raises(SourceError, match="DriveLM folder .* does not exist"):
        list(read(str(tmp_path / "absent"), SourceOptions(name="drivelm")))


F1 = "<c1,CAM_FRONT,700,300>"
F2 = "<c2,CAM_FRONT,100,100>"
F3 = "<c3,CAM_FRONT,900,500>"
B1 = "<c4,CAM_BACK,10,20>"
B2 = "<c5,CAM_BACK,30,40>"


def test_cross_camera_qa_rejected(tmp_path):
    """A QA is kept on its target's camera only when every object it mentions (by tag, or by
    visual description without one) is seen by that camera; otherwise cross_camera."""
    root = tmp_path / "drivelm"
    (root / "data").mkdir(parents=True)
    (root / "samples").mkdir()
    for cam in ("front", "back"):
        (root / "samples" / f"{cam}.jpg").write_bytes(b"not decoded by the reader")
    infos = {F1: _obj("Green light.", (600, 200, 800, 400)), F2: _obj("", (0, 0, 200, 200)),
             F3: _obj("Black sedan.", (800, 400, 1000, 600)), B1: _obj("Brown SUV."), B2: _obj("Black sedan."),
             BAD: _obj("Red car.")}
    qa = [
        {"Q": f"Is {B1} behind {B2}?", "A": "Yes."},                          # 0 kept, CAM_BACK
        {"Q": f"Will {B1} see {F1}?", "A": "No."},                           # 1 two cameras
        {"Q": f"What is {F1}?", "A": f"{B1} waits for it."},                 # 2 two cameras (answer)
        {"Q": f"What should {B1} do?", "A": "Wait for the green light."},    # 3 untagged name of F1
        {"Q": f"What is {F1}?", "A": "A green light."},                      # 4 kept, its own name
        {"Q": f"Where is {B1}?", "A": "Beside the black sedan."},            # 5 kept: B2 is one too
        {"Q": f"What is {F1}?", "A": "Near the brown SUV."},                 # 6 untagged name of B1
        {"Q": f"What does {B1} see?", "A": "The ego vehicle."},              # 7 kept: F2 has no description
        {"Q": f"Is {B1} near {BAD}?", "A": "No."},                           # 8 a mention with no camera
        {"Q": f"Is {B1} a green lighthouse?", "A": "No."},                  # 9 kept: whole words only
    ]
    frame = {"key_object_infos": infos, "QA": {"perception": qa},
             "image_paths": {"CAM_FRONT": "../samples/front.jpg", "CAM_BACK": "../samples/back.jpg"}}
    (root / "data" / "a.json").write_text(json.dumps({"s": {"scene_description": "", "key_frames": {"f": frame}}}))
    scenes, rejects = _split(list(read(str(root), OPTS)))
    reasons = {r.item: r.reason for r in rejects}
    assert reasons == {f"f:{BAD}": "bad_tag", "f:perception:1": "cross_camera", "f:perception:2": "cross_camera",
                       "f:perception:3": "cross_camera", "f:perception:6": "cross_camera",
                       "f:perception:8": "bad_tag"}
    detail = {r.item: r.detail for r in rejects}
    assert detail["f:perception:1"] == f"target {B1} is seen by CAM_BACK; the QA also mentions {F1} (CAM_FRONT)"
    assert detail["f:perception:3"] == (f"target {B1} is seen by CAM_BACK; the QA names green light (CAM_FRONT) "
                                        "without its tag")
    kept = {s.ref.source_path: sorted(q.item for q in s.qa) for s in scenes}
    assert kept == {"samples/back.jpg": ["f:perception:0", "f:perception:5", "f:perception:7", "f:perception:9"],
                    "samples/front.jpg": ["f:perception:4"]}
    assert len(_accounted(scenes, rejects)) == len(infos) + len(qa)  # read = kept + rejected
