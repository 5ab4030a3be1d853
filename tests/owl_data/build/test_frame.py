"""The ``?frame=upright|raw|auto`` option of every source, on crafted EXIF-oriented images.

Each image is drawn upright first (three solid blocks of known colour on grey), then stored as
the raw pixel grid whose EXIF Orientation tag turns it back (checked against Pillow's
``ImageOps.exif_transpose``, independently of the project's table). Annotations are written in
the upright frame (what labelme, Label Studio, FiftyOne and browsers show) or in the raw grid,
and the build must put every sampled point on a pixel of its own block in the stored image and
every box on the block's upright box.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageOps
from pycocotools import mask as mask_utils

from owl_data.build.config import BuildConfig
from owl_data.build.driver import SourceSpec, run_build
from owl_data.corpus.validate import validate_corpus
from owl_data.records import DeferredScene, Scene, iter_expanded
from owl_data.sources import SOURCES, SourceError, SourceOptions, get_reader

W, H = 64, 40  # the upright frame (non-square: orientations 5..8 swap it)
# block -> (colour, upright box x1, y1, x2, y2 in pixels); A box-only, B polygon, C mask
BLOCKS = {"A": ((220, 30, 30), (4, 4, 20, 16)), "B": ((30, 200, 30), (26, 10, 42, 26)),
          "C": ((30, 30, 220), (46, 20, 60, 36))}
INVERSE = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}  # the orientation that undoes each


def _upright(o: int = 1) -> np.ndarray:
    """The upright picture of orientation ``o``'s image: the blocks on grey, and a corner pixel
    of grey level ``o`` so that no two images are the same stored image."""
    img = np.full((H, W, 3), 128, np.uint8)
    img[H - 1, 0] = o
    for colour, (x1, y1, x2, y2) in BLOCKS.values():
        img[y1:y2, x1:x2] = colour
    return img


def _raw(o: int) -> np.ndarray:
    """The raw grid whose EXIF orientation ``o`` shows :func:`_upright` (checked with Pillow)."""
    from owl_data.ingest.orientation import transform_mask

    raw = np.ascontiguousarray(transform_mask(_upright(o), INVERSE[o]))
    im = Image.fromarray(raw)
    exif = im.getexif()
    exif[0x0112] = o
    im.info["exif"] = exif.tobytes()
    assert np.array_equal(np.asarray(ImageOps.exif_transpose(im)), _upright(o))  # Pillow agrees
    return raw


def _write_png(path: Path, o: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(_raw(o))
    exif = im.getexif()
    exif[0x0112] = o
    im.save(path, exif=exif.tobytes())


def _block_raw_box(o: int, name: str) -> tuple[int, int, int, int]:
    """The block's box in the raw grid of orientation ``o`` (found in the raw pixels)."""
    colour = BLOCKS[name][0]
    ys, xs = np.nonzero(np.all(_raw(o) == colour, axis=2))
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _coco_anns(o: int, image_id: int, frame: str) -> list[dict]:
    """Box (A), polygon (B) and RLE mask (C) of the blocks, in the upright or the raw frame."""
    out = []
    size = (W, H) if frame == "upright" else _raw(o).shape[1::-1]
    for k, name in enumerate("ABC"):
        x1, y1, x2, y2 = BLOCKS[name][1] if frame == "upright" else _block_raw_box(o, name)
        ann = {"id": image_id * 10 + k, "image_id": image_id, "category_id": k + 1, "iscrowd": 0,
               "bbox": [x1, y1, x2 - x1, y2 - y1]}
        if name == "B":
            ann["segmentation"] = [[x1, y1, x2, y1, x2, y2, x1, y2]]
        elif name == "C":
            m = np.zeros((size[1], size[0]), np.uint8, order="F")
            m[y1:y2, x1:x2] = 1
            rle = mask_utils.encode(np.asfortranarray(m))
            ann["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
        out.append(ann)
    return out


def _coco(root: Path, frame: str, orientations=range(1, 9)) -> Path:
    """A COCO folder: one image per orientation, annotated in ``frame`` (width/height of that frame)."""
    images, anns = [], []
    for o in orientations:
        _write_png(root / f"o{o}.png", o)
        w, h = (W, H) if frame == "upright" else _raw(o).shape[1::-1]
        images.append({"id": o, "file_name": f"o{o}.png", "width": int(w), "height": int(h)})
        anns += _coco_anns(o, o, frame)
    cats = [{"id": k + 1, "name": n} for k, n in enumerate(("block a", "block b", "block c"))]
    (root / "ann.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root


def _rows(corpus: Path, table: str) -> list[dict]:
    return [r for f in sorted((corpus / table).rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def _build(out: Path, *specs: SourceSpec) -> dict:
    m = run_build(list(specs), out, BuildConfig()).manifest
    rep = validate_corpus(out)
    assert rep.ok, rep.problems
    return m


def _placed(corpus: Path) -> dict[tuple[str, str], list[tuple[str, tuple[int, ...]]]]:
    """(image source_path, block) -> what each row put there: ("point", stored pixel colour)
    per point_vqa row, ("box", upright pixel box) per grounding row."""
    refs = {r["image_id"]: r["source_path"] for r in _rows(corpus, "image_refs")}
    pixels = {r["image_id"]: np.asarray(Image.open(io.BytesIO(r["bytes"])).convert("RGB"))
              for r in _rows(corpus, "images")}
    out: dict = {}
    for r in _rows(corpus, "point_vqa"):
        px = pixels[r["image_id"]]
        assert px.shape == (H, W, 3)  # stored upright
        c, rr = int(r["point"]["x"] * W), int(r["point"]["y"] * H)
        name = "ABC"[int(r["target"]["instance"]) % 10]
        out.setdefault((refs[r["image_id"]], name), []).append(("point", tuple(int(v) for v in px[rr, c])))
    for r in _rows(corpus, "grounding"):
        if r["conversations"][1]["content"] != "<box>":
            continue
        name = {"block a": "A", "block b": "B", "block c": "C"}[r["expression"].removeprefix("the ")]
        box = tuple(round(v * s) for v, s in zip(r["bbox"], (W, H, W, H)))
        out.setdefault((refs[r["image_id"]], name), []).append(("box", box))
    return out


def _assert_on_blocks(corpus: Path, orientations) -> None:
    placed = _placed(corpus)
    for o in orientations:
        for name, (colour, box) in BLOCKS.items():
            got = placed.get((f"o{o}.png", name))
            assert got, (o, name)
            for kind, value in got:
                assert value == (colour if kind == "point" else box), (o, name, kind, value)


@pytest.mark.parametrize("frame", ["upright", "raw"])
def test_annotations_land_on_their_blocks_for_every_orientation(tmp_path, frame):
    """Boxes, polygons and RLE masks drawn in the frame the option names land, for orientations
    1..8, on the upright pixels of their block: every sampled point on the block's colour,
    every grounding box on the block's upright box."""
    spec = f"{_coco(tmp_path / 'coco', frame)}:{tmp_path / 'coco' / 'ann.json'}"
    if frame == "raw":
        spec += "?frame=raw"
    m = _build(tmp_path / "out", SourceSpec("coco", spec))
    s = m["sources"]["coco"]
    assert s["items_rejected"] == 0, s["rejects"]
    _assert_on_blocks(tmp_path / "out", range(1, 9))
    # orientation 1 is upright in either option; 2..4 have both sizes equal: ambiguous
    want = {"upright": 8, "raw": 0, "ambiguous": 3} if frame == "upright" else {"upright": 1, "raw": 7, "ambiguous": 3}
    assert s["frames"] == want


def test_upright_annotations_read_as_raw_land_elsewhere(tmp_path):
    """The failure the option exists for: upright annotations of an EXIF-3 image (same size in
    both frames) taken as raw put points on other pixels than their block's."""
    spec = f"{_coco(tmp_path / 'coco', 'upright', [3])}:{tmp_path / 'coco' / 'ann.json'}?frame=raw"
    _build(tmp_path / "out", SourceSpec("coco", spec))
    placed = _placed(tmp_path / "out")
    for name, (colour, box) in BLOCKS.items():  # turned by 180 degrees: x -> 64 - x, y -> 40 - y
        x1, y1, x2, y2 = box
        assert [v for kind, v in placed[("o3.png", name)] if kind == "box"] == [(W - x2, H - y2, W - x1, H - y1)]
    # block A's turned box lies on grey and on block C: no point of A is red
    assert all(v != BLOCKS["A"][0] for kind, v in placed[("o3.png", "A")] if kind == "point")


def test_auto_follows_the_stated_size_and_takes_raw_when_both_match(tmp_path):
    """auto: orientations 5..8 follow the size the file states (upright annotations with the
    upright size, raw ones with the raw size); for 1..4 (same size) the raw frame is taken."""
    up = _coco(tmp_path / "up", "upright", [5, 6, 7, 8])
    raw = _coco(tmp_path / "raw", "raw", range(1, 9))
    m = _build(tmp_path / "out_up", SourceSpec("coco", f"{up}:{up / 'ann.json'}?frame=auto"))
    _assert_on_blocks(tmp_path / "out_up", [5, 6, 7, 8])
    assert m["sources"]["coco"]["frames"] == {"upright": 4, "raw": 0, "ambiguous": 0}
    m = _build(tmp_path / "out_raw", SourceSpec("coco", f"{raw}:{raw / 'ann.json'}?frame=auto"))
    _assert_on_blocks(tmp_path / "out_raw", range(1, 9))
    assert m["sources"]["coco"]["frames"] == {"upright": 1, "raw": 7, "ambiguous": 3}


def test_upright_with_only_the_raw_size_stated_is_size_mismatch(tmp_path):
    """``frame=upright`` (the default) and a file stating the raw size of an EXIF-6 image
    (40x64, upright 64x40): an explicit frame is never overridden; every annotation of the
    image is rejected ``size_mismatch`` with a detail naming the options that fit."""
    root = _coco(tmp_path / "coco", "raw", [6])
    m = _build(tmp_path / "out", SourceSpec("coco", f"{root}:{root / 'ann.json'}"))
    s = m["sources"]["coco"]
    assert (s["items_read"], s["items_rejected"], s["rejects"]) == (3, 3, {"size_mismatch": 3})
    assert s["frames"] == {"upright": 0, "raw": 0, "ambiguous": 0}
    details = {r["detail"] for r in _rows(tmp_path / "out", "rejects")}
    assert len(details) == 1 and "?frame=raw or ?frame=auto" in details.pop()


# --- label maps (Cityscapes): masks in the frame's pixel grid -----------------------------


def _cityscapes(root: Path, frame: str) -> Path:
    """A Cityscapes root: one frame per orientation, the instanceIds map (a car per block,
    ids 26000 + k) and labelIds drawn in ``frame``'s grid."""
    for o in range(1, 9):
        stem = f"c_000000_00000{o}"
        _write_png(root / "leftImg8bit" / "train" / "c" / f"{stem}_leftImg8bit.png", o)
        shape = (H, W) if frame == "upright" else _raw(o).shape[:2]
        inst = np.full(shape, 7, np.uint16)  # road
        for k, name in enumerate("ABC"):
            x1, y1, x2, y2 = BLOCKS[name][1] if frame == "upright" else _block_raw_box(o, name)
            inst[y1:y2, x1:x2] = 26000 + k
        gt = root / "gtFine" / "train" / "c"
        gt.mkdir(parents=True, exist_ok=True)
        Image.fromarray(inst).save(gt / f"{stem}_gtFine_instanceIds.png")
        Image.fromarray(np.where(inst < 1000, inst, inst // 1000).astype(np.uint8)).save(
            gt / f"{stem}_gtFine_labelIds.png")
    return root


@pytest.mark.parametrize("frame", ["upright", "raw"])
def test_label_map_masks_land_on_their_blocks(tmp_path, frame):
    root = _cityscapes(tmp_path / "cs", frame)
    spec = str(root) + ("?frame=raw" if frame == "raw" else "")
    m = _build(tmp_path / "out", SourceSpec("cityscapes", spec))
    s = m["sources"]["cityscapes"]
    assert s["items_rejected"] == 0 and s["items_kept"] == 24, s
    refs = {r["image_id"]: r["source_path"] for r in _rows(tmp_path / "out", "image_refs")}
    pixels = {r["image_id"]: np.asarray(Image.open(io.BytesIO(r["bytes"])).convert("RGB"))
              for r in _rows(tmp_path / "out", "images")}
    seen = set()
    for r in _rows(tmp_path / "out", "point_vqa"):
        if r["target"]["category"] != "car":
            continue
        k = int(r["target"]["instance"]) - 26000
        px = pixels[r["image_id"]][int(r["point"]["y"] * H), int(r["point"]["x"] * W)]
        assert tuple(int(v) for v in px) == BLOCKS["ABC"[k]][0], (refs[r["image_id"]], k)
        x1, y1, x2, y2 = BLOCKS["ABC"[k]][1]
        assert r["target"]["bbox"] == pytest.approx([x1 / W, y1 / H, x2 / W, y2 / H])
        seen.add((refs[r["image_id"]], k))
    assert len(seen) == 24
    want = {"upright": 8, "raw": 0, "ambiguous": 3} if frame == "upright" else {"upright": 1, "raw": 7, "ambiguous": 3}
    assert s["frames"] == want


def test_cityscapes_map_of_the_wrong_frame_is_size_mismatch(tmp_path):
    """Raw-grid maps of an EXIF-6 frame read with the default ``upright``: the reader rejects
    the frame (``size_mismatch``) from the headers, before decoding a map."""
    root = _cityscapes(tmp_path / "cs", "raw")
    recs = list(iter_expanded(get_reader("cityscapes")(str(root), SourceOptions(name="cityscapes"))))
    bad = {r.item: (r.reason, r.detail) for r in recs if not isinstance(r, Scene)}
    assert set(bad) == {f"leftImg8bit/train/c/c_000000_00000{o}_leftImg8bit.png" for o in (5, 6, 7, 8)}
    assert all(reason == "size_mismatch" and "?frame=upright" in d for reason, d in bad.values())


# --- resume: the option is part of the chunks' content key ---------------------------------


def test_a_resume_with_another_frame_recomputes(tmp_path):
    """A finished build's chunks are not reused by a build of the same folder with another
    ``frame`` (the ImageRefs, hence the content keys, differ): the corpus equals a fresh one."""
    from owl_data.build.driver import _check_sources  # noqa: F401  (the driver is importable)
    from owl_data.build.content_key import records_key

    root = _coco(tmp_path / "coco", "upright", [3])
    spec = f"{root}:{root / 'ann.json'}"
    read = get_reader("coco")
    up = list(read(spec, SourceOptions(name="coco")))
    raw = list(read(spec + "?frame=raw", SourceOptions(name="coco")))
    assert records_key(up, context="x") != records_key(raw, context="x")
    fresh = _build(tmp_path / "fresh", SourceSpec("coco", spec + "?frame=raw"))
    _build(tmp_path / "out", SourceSpec("coco", spec))
    again = _build(tmp_path / "out", SourceSpec("coco", spec + "?frame=raw"))
    assert again["fingerprint"] == fresh["fingerprint"]
    assert again["sources"]["coco"]["frames"] == {"upright": 0, "raw": 1, "ambiguous": 1}


# --- every source takes the option ----------------------------------------------------------


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_upright()).save(path, format="JPEG" if path.suffix == ".jpg" else "PNG")


def _tiny_sources(tmp: Path) -> dict[str, str]:
    """One small folder per registered source, each yielding at least one Scene."""
    from owl_data.sources.synthetic.scenes import write_default_sources

    specs = dict(write_default_sources(tmp / "default", seed=0, train=1, val=1, width=128, height=64))
    coco = _coco(tmp / "coco", "upright", [1])
    specs["coco"] = f"{coco}:{coco / 'ann.json'}"
    d = tmp / "drivelm"
    _image(d / "samples" / "front.jpg")
    tag = "<c1,CAM_FRONT,10,10>"
    (d / "data").mkdir(parents=True)
    (d / "data" / "a.json").write_text(json.dumps({"s1": {"scene_description": "x", "key_frames": {"f1": {
        "key_object_infos": {tag: {"Category": "Vehicle", "Status": None, "Visual_description": "Red car.",
                                   "2d_bbox": [0, 0, 20, 20]}},
        "QA": {"perception": [{"Q": f"What is {tag}?", "A": "A car."}]},
        "image_paths": {"CAM_FRONT": "../samples/front.jpg"}}}}}))
    specs["drivelm"] = str(d)
    _image(tmp / "gqa" / "images" / "n1.jpg")
    (tmp / "gqa" / "val_questions.json").write_text(json.dumps(
        {"q1": {"imageId": "n1", "question": "Is it day?", "answer": "yes", "fullAnswer": "Yes."}}))
    specs["gqa"] = str(tmp / "gqa")
    _image(tmp / "llava" / "a.jpg")
    (tmp / "llava" / "instr.json").write_text(json.dumps([{"id": "a", "image": "a.jpg", "conversations": [
        {"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "Blocks."}]}]))
    specs["llava"] = str(tmp / "llava")
    _image(tmp / "sharegpt" / "a.jpg")
    (tmp / "sharegpt" / "chat.json").write_text(json.dumps([{"messages": [
        {"role": "user", "content": "<image>What is it?"}, {"role": "assistant", "content": "Blocks."}],
        "images": ["a.jpg"]}]))
    specs["sharegpt"] = str(tmp / "sharegpt")
    _image(tmp / "f30k" / "flickr30k-images" / "42.jpg")
    (tmp / "f30k" / "Sentences").mkdir(parents=True)
    (tmp / "f30k" / "Sentences" / "42.txt").write_text("[/EN#1/other Three blocks] on grey .\n")
    specs["flickr30k"] = str(tmp / "f30k")
    _image(tmp / "vg" / "VG_100K" / "5.jpg")
    (tmp / "vg" / "region_descriptions.json").write_text(json.dumps([{"id": 5, "regions": [
        {"region_id": 1, "image_id": 5, "x": 4, "y": 4, "width": 16, "height": 12, "phrase": "a red block"}]}]))
    specs["visual_genome"] = str(tmp / "vg")
    _image(tmp / "pq" / "vg_images" / "1.jpg")
    (tmp / "pq" / "spatial_dataset.json").write_text(json.dumps(
        {"1": [{"question": "What is this?", "answer": "a block", "point": {"x": 10, "y": 10, "ans": "a block"},
                "id": 1}]}))
    specs["pointingqa"] = str(tmp / "pq")
    _image(tmp / "lcb" / "a.jpg")
    (tmp / "lcb" / "caps_boxes.jsonl").write_text(json.dumps(
        {"id": "x", "image": "a.jpg", "captions": ["Blocks."], "instances": [
            {"category": "block", "bbox": [0.0625, 0.1, 0.3125, 0.4]}]}) + "\n")
    specs["llava_caps_boxes"] = str(tmp / "lcb")
    return specs


@pytest.fixture(scope="module")
def tiny_sources(tmp_path_factory) -> dict[str, str]:
    return _tiny_sources(tmp_path_factory.mktemp("sources"))


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_source_takes_the_frame_option(tiny_sources, name):
    """Each registered reader accepts ``?frame=`` (after its own options) and puts it on the
    ImageRef of every Scene it yields; without it the frame is ``upright``."""
    spec = tiny_sources[name]
    sep = "&" if "?" in spec else "?"
    read = get_reader(name)
    for suffix, want in (("", "upright"), (f"{sep}frame=raw", "raw"), (f"{sep}frame=auto", "auto")):
        recs = list(iter_expanded(read(spec + suffix, SourceOptions(name=name))))
        scenes = [r for r in recs if isinstance(r, Scene)]
        assert scenes and {s.ref.frame for s in scenes} == {want}, (name, suffix)
        assert not any(isinstance(r, DeferredScene) for r in recs)


@pytest.mark.parametrize("name", sorted(SOURCES))
@pytest.mark.parametrize("option,words", [
    ("frame=sideways", "frame='sideways' is not one of upright, raw, auto"),
    ("frame=", "is not key=value"),
    ("frames=raw", "unknown option 'frames'; known options: .*frame: which frame"),
    ("frame=raw&frame=auto", "option 'frame' given twice"),
])
def test_a_bad_frame_option_is_one_error_naming_the_flag(tmp_path, name, option, words):
    """A bad value or key fails the source at once with one SourceError naming ``--source``,
    the source and the option, before any file is looked at (the folder does not exist)."""
    spec = f"{tmp_path}/img:{tmp_path}/ann.json" if name == "coco" else str(tmp_path / "missing")
    with pytest.raises(SourceError, match=f"^--source {name}=.*{words}"):
        list(get_reader(name)(f"{spec}?{option}", SourceOptions(name=name)))


def test_cli_reports_a_bad_frame_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from owl_data.cli import app

    root = _coco(tmp_path / "coco", "upright", [1])
    res = CliRunner().invoke(app, ["build", "--source", f"coco={root}:{root}/ann.json?frame=up",
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and not (tmp_path / "out").exists()
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --source coco=")
    assert "frame='up' is not one of upright, raw, auto" in lines[0]


def test_cli_notes_a_source_with_ambiguous_frames(tmp_path):
    """The build summary names a source whose frame the annotations left to the option."""
    from typer.testing import CliRunner

    from owl_data.cli import app

    root = _coco(tmp_path / "coco", "upright", [1, 3, 6])
    res = CliRunner().invoke(app, ["build", "--source", f"coco={root}:{root}/ann.json", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert ("note: source 'coco': 1 EXIF-oriented image(s) whose annotations do not tell the raw frame from the "
            "upright one were taken as its ?frame= option says (default upright; frames taken: upright 3, raw 0)") in text


def test_a_scene_that_places_nothing_is_in_no_frame(tmp_path):
    """Captions of an EXIF-6 image whose file states the raw size: nothing is placed on the
    image, so the default ``upright`` does not reject them and the image is not counted in
    ``frames``; a size matching neither frame is still ``size_mismatch``."""
    d = tmp_path / "cc"
    _write_png(d / "val2017" / "1.png", 6)
    raw_w, raw_h = _raw(6).shape[1::-1]
    doc = {"images": [{"id": 1, "file_name": "1.png", "width": int(raw_w), "height": int(raw_h)},
                      {"id": 2, "file_name": "1.png", "width": 99, "height": 99}],
           "annotations": [{"id": 1, "image_id": 1, "caption": "Three blocks."},
                           {"id": 2, "image_id": 2, "caption": "Three blocks again."}]}
    (d / "captions_val2017.json").write_text(json.dumps(doc))
    m = _build(tmp_path / "out", SourceSpec("coco_captions", str(d)))
    s = m["sources"]["coco_captions"]
    assert (s["items_kept"], s["rejects"]) == (1, {"size_mismatch": 1})
    assert s["frames"] == {"upright": 0, "raw": 0, "ambiguous": 0}
