"""Hostile inputs found by adversarial testing, each kept as a regression test.

Every case is crafted in ``tmp_path`` and runs the real builder. After each build: per
source, items read = kept + rejected, the per-reason counts sum to the rejects, and
``validate`` finds nothing (see ``_build``).
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

import owl_data.build.driver as build_mod
from owl_data.build.driver import SourceSpec, run_build
from owl_data.build.config import BuildConfig, load_build_config
from owl_data.corpus.validate import validate_corpus
from owl_data.fs import OutputError
from owl_data.ingest.geometry import decode_rle_counts
from owl_data.ingest.images import load_image
from owl_data.records import Box, ImageRef, Instance, Reject, Scene
from owl_data.sources import SOURCES, SourceError

# --- helpers -------------------------------------------------------------------------------


def _rows(corpus: Path, table: str) -> list[dict]:
    return [r for f in sorted((corpus / table).rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def _build(sources: list[SourceSpec], out: Path, **cfg) -> tuple[dict, dict[str, tuple[str, str]]]:
    """Build, check the accounting invariants and validate; (manifest, item -> (reason, detail))."""
    m = run_build(sources, out, BuildConfig(**cfg)).manifest
    rej = _rows(out, "rejects")
    for name, s in m["sources"].items():
        assert s["items_read"] == s["items_kept"] + s["items_rejected"], s
        assert sum(s["rejects"].values()) == s["items_rejected"] == sum(r["source"] == name for r in rej), s
    rep = validate_corpus(out)
    assert rep.ok, rep.problems
    return m, {r["item"]: (r["reason"], r["detail"]) for r in rej}


def _jpg(path: Path, w: int = 64, h: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.zeros((h, w, 3), np.uint8)
    a[:] = (120, 60, 30)
    a[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = (200, 200, 200)
    Image.fromarray(a).save(path, format="JPEG")
    return path


def _coco(tmp: Path, anns: list[dict] | None = None, *, images: list[dict] | None = None,
          cats: list[dict] | None = None, raw: str | None = None) -> SourceSpec:
    root = tmp / "coco"
    _jpg(root / "img" / "a.jpg")
    ann = root / "ann.json"
    if raw is not None:
        ann.write_text(raw)
    else:
        ann.write_text(json.dumps({
            "images": images if images is not None else [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
            "annotations": anns or [],
            "categories": cats if cats is not None else [{"id": 1, "name": "car"}],
        }))
    return SourceSpec("coco", f"{root / 'img'}:{ann}")


def _ann(aid, **kw) -> dict:
    a = {"id": aid, "image_id": 1, "category_id": 1, "segmentation": [[10, 10, 50, 10, 50, 40, 10, 40]],
         "bbox": [10, 10, 40, 30], "iscrowd": 0}
    a.update(kw)
    return a


def _png_header_only(path: Path, w: int, h: int, *, bit_depth: int = 8, colour: int = 2) -> Path:
    """A PNG whose header states w x h (no real pixel data): enough for Image.open."""
    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, colour, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


def _cityscapes(tmp: Path, *, w: int = 64, h: int = 48, polygons: str | None = None) -> Path:
    """One frame: a car (instance 26001) in the middle of a road."""
    root = tmp / "cs"
    stem = "city_000000_000000"
    img = root / "leftImg8bit" / "train" / "city" / f"{stem}_leftImg8bit.png"
    img.parent.mkdir(parents=True)
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(img)
    gt = root / "gtFine" / "train" / "city"
    gt.mkdir(parents=True)
    inst = np.full((h, w), 7, np.uint16)
    inst[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 26001
    Image.fromarray(inst).save(gt / f"{stem}_gtFine_instanceIds.png")
    if polygons is not None:
        (gt / f"{stem}_gtFine_polygons.json").write_text(polygons)
    return root


def _drivelm(tmp: Path, frames: dict | None = None, *, extra: dict | None = None) -> Path:
    """A DriveLM folder: data/a.json (scene1/f1, one key object on CAM_BACK) + samples/back.jpg."""
    root = tmp / "drivelm"
    _jpg(root / "samples" / "back.jpg", 1600, 900)
    tag = "<c1,CAM_BACK,100.0,100.0>"
    frame = {"key_object_infos": {tag: {"Category": "Vehicle", "Status": None,
                                        "Visual_description": "Brown SUV.", "2d_bbox": [50, 50, 150, 150]}},
             "QA": {"perception": [{"Q": f"What is {tag}?", "A": "A brown SUV."}]},
             "image_paths": {"CAM_BACK": "../samples/back.jpg"}}
    data = {"scene1": {"scene_description": "x", "key_frames": frames or {"f1": frame}}}
    data.update(extra or {})
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "data" / "a.json").write_text(json.dumps(data))
    return root


TAG = "<c1,CAM_BACK,100.0,100.0>"


def _frame(**over) -> dict:
    ko = {"Category": "Vehicle", "Status": None, "Visual_description": "Brown SUV.", "2d_bbox": [50, 50, 150, 150]}
    ko.update(over.pop("ko", {}))
    f = {"key_object_infos": {TAG: ko}, "QA": {"perception": [{"Q": f"What is {TAG}?", "A": "A brown SUV."}]},
         "image_paths": {"CAM_BACK": "../samples/back.jpg"}}
    f.update(over)
    return f


# --- 1. --out never deletes what is not a corpus ---------------------------------------------


def _snapshot(p: Path) -> list[str]:
    return sorted(str(x.relative_to(p.parent)) for x in [p, *p.rglob("*")]) if p.exists() else []


def test_out_refusals_touch_nothing(tmp_path, monkeypatch):
    src = _coco(tmp_path, [_ann(1)])
    root = tmp_path / "coco"
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    a_file = tmp_path / "file.txt"
    a_file.write_text("mine")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "empty_target", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    for out, match in [(root / "img", "source path"), (root, "source path"), (root / "img" / "out", "inside"),
                       (tmp_path, "current directory"), (Path("."), "name"), (Path(""), "name"),
                       (other, "not an Owl-VL corpus"), (a_file, "not a folder"), (link, "symbolic link")]:
        with pytest.raises(OutputError, match=match):
            run_build([src], out, BuildConfig())
    assert _snapshot(tmp_path) == before  # nothing deleted, no .partial folder left
    assert (other / "keep.txt").read_text() == "mine" and a_file.read_text() == "mine"


def test_out_empty_dir_and_old_corpus_are_replaced(tmp_path):
    src = _coco(tmp_path, [_ann(1)])
    out = tmp_path / "out"
    out.mkdir()
    _build([src], out)
    _build([src], out)  # an existing corpus (manifest.json) is replaced
    assert (out / "manifest.json").is_file()


def test_drivelm_out_inside_the_source_is_refused(tmp_path):
    root = _drivelm(tmp_path)
    with pytest.raises(OutputError, match="inside"):
        run_build([SourceSpec("drivelm", str(root))], root / "corpus", BuildConfig())
    assert not any(p.name.endswith(".partial") for p in root.iterdir())


# --- 2. numbers and decoders that used to raise ----------------------------------------------


def test_huge_and_non_finite_numbers_are_rejects(tmp_path):
    big = 10 ** 400
    anns = [_ann(1, segmentation=[], bbox=[big, 0, 10, 10]),
            _ann(2, segmentation=[[10, 10, big, 10, 50, 40, 10, 40]]),
            _ann(3, segmentation=[[10, 10, "50", 10, 50, 40, 10, 40]]),
            _ann(4, segmentation=[], bbox=[True, 0, 10, 10]),
            _ann(5, image_id=2)]
    images = [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
              {"id": 2, "file_name": "a.jpg", "width": big, "height": 48}]
    _, rej = _build([_coco(tmp_path, anns, images=images)], tmp_path / "out")
    assert rej["ann:1"][0] == "non_finite"
    assert rej["ann:2"][0] == "non_finite"
    assert rej["ann:3"][0] == "bad_polygon"
    assert rej["ann:4"][0] == "malformed_annotation"
    assert rej["ann:5"][0] == "malformed_image_entry"


def test_drivelm_huge_bbox_is_a_reject(tmp_path):
    root = _drivelm(tmp_path, {"f1": _frame(ko={"2d_bbox": [10 ** 400, 0, 10, 10]})})
    _, rej = _build([SourceSpec("drivelm", str(root))], tmp_path / "out")
    assert rej[f"f1:{TAG}"][0] == "non_finite"
    assert rej["f1:perception:0"][0] == "non_finite"  # the QA of a rejected target gets its reason


def test_cityscapes_polygons_with_infinite_size(tmp_path):
    root = _cityscapes(tmp_path, polygons='{"imgWidth": 1e999, "imgHeight": 48, "objects": []}')
    _, rej = _build([SourceSpec("cityscapes", str(root))], tmp_path / "out")
    (reason, detail), = rej.values()
    assert reason == "unreadable_annotation" and "imgWidth" in detail


def test_cityscapes_bomb_and_oversized_frames_rejected_from_the_header(tmp_path):
    root = _cityscapes(tmp_path)
    # a header stating 15000 x 15000 (Pillow's DecompressionBombError) beside the real frame
    _png_header_only(root / "leftImg8bit" / "train" / "city" / "city_000000_000001_leftImg8bit.png", 15000, 15000)
    m, rej = _build([SourceSpec("cityscapes", str(root))], tmp_path / "out")
    assert rej["leftImg8bit/train/city/city_000000_000001_leftImg8bit.png"][0] == "too_large"
    assert m["sources"]["cityscapes"]["items_kept"] >= 1
    # the build's max_image_pixels reaches the reader: the 64x48 frame is over 1000 pixels
    _, rej = _build([SourceSpec("cityscapes", str(root))], tmp_path / "out2", max_image_pixels=1000)
    assert {r for r, _ in rej.values()} == {"too_large"}


@pytest.mark.parametrize("size", [[None, None], ["a", "b"], [48.5, 64], [10 ** 400, 64]])
def test_rle_size_not_numbers_is_bad_rle(tmp_path, size):
    anns = [_ann(1, segmentation={"size": size, "counts": [0, 3072]}, iscrowd=1), _ann(2)]
    _, rej = _build([_coco(tmp_path, anns)], tmp_path / "out")
    assert rej["ann:1"][0] == "bad_rle"


@pytest.mark.parametrize("counts", ["", "zzzzzzzzzz", "0", "1\x7f", "3"])
def test_compressed_rle_that_does_not_cover_the_frame_is_bad_rle(tmp_path, counts):
    anns = [_ann(1, segmentation={"size": [48, 64], "counts": counts}), _ann(2)]
    _, rej = _build([_coco(tmp_path, anns)], tmp_path / "out")
    assert rej["ann:1"][0] == "bad_rle"


def test_rle_counts_decoder_matches_pycocotools():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    for _ in range(50):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        m = np.asfortranarray(rng.random((h, w)) < rng.random())
        rle = mask_utils.encode(m)
        runs = decode_rle_counts(rle["counts"])
        flat = m.flatten(order="F")
        edges = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
        want = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
        assert runs == ([0] + want if flat[0] else want)
    assert decode_rle_counts("") == []


def test_valid_compressed_rle_decodes_the_same_every_time(tmp_path):
    from pycocotools import mask as mask_utils

    m = np.zeros((48, 64), np.uint8, order="F")
    m[10:30, 20:50] = 1
    counts = mask_utils.encode(m)["counts"].decode()
    anns = [_ann(1, segmentation={"size": [48, 64], "counts": counts}, iscrowd=0)]
    a, _ = _build([_coco(tmp_path, anns)], tmp_path / "a")
    b, _ = _build([_coco(tmp_path, anns)], tmp_path / "b")
    assert a["fingerprint"] == b["fingerprint"] and a["sources"]["coco"]["items_kept"] == 1


def _tiff_with_float_offsets() -> bytes:
    """A TIFF whose StripOffsets tag has type FLOAT: Pillow raises TypeError in load()."""
    b = io.BytesIO()
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(b, format="TIFF")
    d = bytearray(b.getvalue())
    off = struct.unpack_from("<I", d, 4)[0]
    for i in range(struct.unpack_from("<H", d, off)[0]):
        e = off + 2 + 12 * i
        if struct.unpack_from("<H", d, e)[0] == 273:
            struct.pack_into("<H", d, e + 2, 11)
    return bytes(d)


def test_corrupt_tiff_is_unreadable_image(tmp_path):
    src = _coco(tmp_path, [_ann(1)], images=[{"id": 1, "file_name": "t.tif", "width": 32, "height": 24}])
    (tmp_path / "coco" / "img" / "t.tif").write_bytes(_tiff_with_float_offsets())
    _, rej = _build([src], tmp_path / "out")
    assert rej["ann:1"][0] == "unreadable_image" and "TypeError" in rej["ann:1"][1]


def test_deeply_nested_json_is_a_clear_source_error(tmp_path):
    deep = "[" * 200_000 + "]" * 200_000
    with pytest.raises(SourceError, match="nested too deeply"):
        run_build([_coco(tmp_path, raw=deep)], tmp_path / "out", BuildConfig())
    with pytest.raises(SourceError, match="digits|cannot read"):
        run_build([_coco(tmp_path, raw='{"images": [], "annotations": [], "x": ' + "9" * 5000 + "}")],
                  tmp_path / "out", BuildConfig())
    root = _drivelm(tmp_path)
    (root / "data" / "deep.json").write_text(deep)
    _, rej = _build([SourceSpec("drivelm", str(root))], tmp_path / "out")
    assert rej["data/deep.json"][0] == "not_a_drivelm_file" and "nested" in rej["data/deep.json"][1]




# --- 4. item keys and accounting -------------------------------------------------------------


def test_coco_string_and_bool_ids_get_unique_keys(tmp_path):
    anns = [_ann(1), _ann("1"), _ann(True), _ann(2, segmentation=[[2, 2, 8, 2, 8, 45, 2, 45]])]
    m, rej = _build([_coco(tmp_path, anns)], tmp_path / "out")
    s = m["sources"]["coco"]
    assert s["items_read"] == 4 and s["items_kept"] == 2
    assert rej["ann:#1"][0] == rej["ann:#2"][0] == "malformed_annotation"


def _kept_and_rejected_reader(spec: str, options):
    """A test source: item ``x`` is rejected by the reader and kept by a scene."""
    path = Path(spec)
    ref = ImageRef(source=options.name, path=path, source_path=path.name, group="g", declared_size=(64, 48))
    yield Reject(options.name, "x", "read", "made_up", "rejected first")
    yield Scene(ref=ref, instances=[Instance("1", "car", geometry=Box(10, 10, 50, 40), item="x")], items=["x"])
    yield Reject(options.name, "y", "read", "made_up", "")
    yield Reject(options.name, "y", "read", "other_reason", "the same item twice")


def test_an_item_kept_anywhere_leaves_no_reject_row(tmp_path, monkeypatch):
    monkeypatch.setitem(SOURCES, "fake", f"{__name__}:_kept_and_rejected_reader")
    img = _jpg(tmp_path / "src" / "a.jpg")
    m, rej = _build([SourceSpec("fake", str(img))], tmp_path / "out")
    s = m["sources"]["fake"]
    assert (s["items_read"], s["items_kept"], s["items_rejected"]) == (2, 1, 1)
    assert rej == {"y": ("made_up", "")} and s["rejects"] == {"made_up": 1}




# --- 5. resume never reuses a chunk built from other input -----------------------------------


class Killed(RuntimeError):
    pass


def test_resume_recomputes_chunks_whose_input_changed(tmp_path, monkeypatch):
    anns = [_ann(1), _ann(2, image_id=2)]
    images = [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
              {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48}]
    src = _coco(tmp_path, anns, images=images)
    _jpg(tmp_path / "coco" / "img" / "b.jpg")
    out = tmp_path / "out"

    def killed(*a, **k):
        raise Killed()

    monkeypatch.setattr(build_mod, "_consolidate", killed)
    with pytest.raises(Killed):
        run_build([src], out, BuildConfig(chunk_scenes=1))
    monkeypatch.undo()
    # the input changes between the kill and the resume: a category and an image
    ann = tmp_path / "coco" / "ann.json"
    ann.write_text(ann.read_text().replace('"car"', '"truck"'))
    _jpg(tmp_path / "coco" / "img" / "b.jpg", 80, 48)  # now the wrong size: size_mismatch
    resumed, rej = _build([src], out, chunk_scenes=1)
    fresh, _ = _build([src], tmp_path / "fresh", chunk_scenes=1)
    assert resumed["fingerprint"] == fresh["fingerprint"]
    assert rej["ann:2"][0] == "size_mismatch"
    assert {r["target"]["category"] for r in _rows(out, "point_vqa")} == {"truck"}


# --- 7, 8. DriveLM files and frames ----------------------------------------------------------


def test_drivelm_unrelated_json_is_a_reject_not_an_abort(tmp_path):
    root = _drivelm(tmp_path)
    (root / "data" / "notes.json").write_text(json.dumps({"hello": "world"}))
    (root / "data" / "list.json").write_text("[1, 2]")
    m, rej = _build([SourceSpec("drivelm", str(root))], tmp_path / "out")
    assert rej["data/notes.json"][0] == rej["data/list.json"][0] == "not_a_drivelm_file"
    assert m["sources"]["drivelm"]["items_kept"] == 2


def test_drivelm_frame_repeated_under_another_scene_is_rejected(tmp_path):
    root = _drivelm(tmp_path, extra={"scene2": {"scene_description": "y", "key_frames": {"f1": _frame()}}})
    m, rej = _build([SourceSpec("drivelm", str(root))], tmp_path / "out")
    assert rej[f"f1@scene2:{TAG}"][0] == "duplicate_frame"
    assert rej["f1@scene2:perception:0"][0] == "duplicate_frame"
    assert m["sources"]["drivelm"]["items_kept"] == 2


# --- 9. configuration values -----------------------------------------------------------------


@pytest.mark.parametrize("yaml_text,field", [
    ("val_percent: abc", "val_percent"), ("chunk_scenes: x", "chunk_scenes"),
    ("chunk_scenes: 2.5", "chunk_scenes"), ("max_image_pixels: null", "max_image_pixels"),
    ("max_image_pixels: 1.5", "max_image_pixels"), ("workers: true", "workers"), ("points: 5", "points"),
    ("points: {min_area_px: x}", "min_area_px"), ("points: {stuff_share: .nan}", "stuff_share"),
    ("points: {stuff_categories: 5}", "stuff_categories"), ("points: {stuff_categories: road}", "stuff_categories"),
    ("description_no_question: maybe", "description_no_question"), ("seed: -1", "seed"),
])
def test_bad_config_values_name_the_field(tmp_path, yaml_text, field):
    p = tmp_path / "build.yaml"
    p.write_text("build:\n  " + yaml_text + "\n")
    with pytest.raises(ValueError, match=field):
        load_build_config(p)


def test_invalid_yaml_names_file_and_line(tmp_path):
    p = tmp_path / "build.yaml"
    p.write_text("build:\n  seed: 0\n  points: [\n")
    with pytest.raises(ValueError, match=r"build\.yaml, line \d+"):
        load_build_config(p)


# --- 10. images, placeholders, categories, points --------------------------------------------


def _png16_rgb(path: Path, w: int = 64, h: int = 48) -> np.ndarray:
    a = (np.arange(h * w * 3).reshape(h, w, 3) * 37 % 65536).astype(">u2")
    raw = b"".join(b"\x00" + a[i].tobytes() for i in range(h))

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return a.astype(np.uint16)


def test_16_bit_rgb_png_is_reencoded_not_stored_as_is(tmp_path):
    p = tmp_path / "deep.png"
    a = _png16_rgb(p)
    img = load_image(p)
    assert img.reencoded and img.data != p.read_bytes()
    assert np.array_equal(img.pixels, (a >> 8).astype(np.uint8))  # Pillow's 8-bit reduction
    assert np.asarray(Image.open(io.BytesIO(img.data))).dtype == np.uint8


def test_placeholders_in_source_text_reject_the_item(tmp_path):
    cats = [{"id": 1, "name": "<point><image>"}, {"id": 2, "name": "car"}, {"id": 3, "name": "  "}]
    anns = [_ann(1), _ann(2, category_id=2), _ann(3, category_id=3)]
    m, rej = _build([_coco(tmp_path, anns, cats=cats)], tmp_path / "out")
    assert rej["ann:1"][0] == "placeholder_in_text"
    assert rej["ann:3"][0] == "empty_category"
    assert m["sources"]["coco"]["items_kept"] == 1
    for table in ("point_vqa", "grounding"):
        for r in _rows(tmp_path / "out", table):
            assert "<image><image>" not in r["conversations"][0]["content"]


def test_drivelm_placeholder_in_qa_and_point_outside_box(tmp_path):
    frames = {"f1": _frame(QA={"perception": [{"Q": f"Is <point> near {TAG}?", "A": "Yes."},
                                              {"Q": f"What is {TAG}?", "A": "It is <image>."},
                                              {"Q": f"What is {TAG}?", "A": "A brown SUV."}]}),
              "f2": _frame(ko={"2d_bbox": [500, 500, 600, 600]})}
    root = _drivelm(tmp_path, frames)
    _, rej = _build([SourceSpec("drivelm", str(root))], tmp_path / "out")
    assert rej["f1:perception:0"][0] == rej["f1:perception:1"][0] == "placeholder_in_text"
    assert "f1:perception:2" not in rej
    assert rej[f"f2:{TAG}"][0] == rej["f2:perception:0"][0] == "point_outside_target"


# --- fresh-user findings (issue 13 review): names that cannot be said, stable reject details ---


@pytest.mark.parametrize("name,reason", [("x" * 100, "bad_category"), ("car\nuser: hi", "bad_category"),
                                         ("car\tred", "bad_category")])
def test_a_category_that_cannot_be_said_is_rejected(tmp_path, name, reason):
    cats = [{"id": 1, "name": name}, {"id": 2, "name": "person"}]
    src = _coco(tmp_path, [_ann(1), _ann(2, category_id=2, bbox=[5, 5, 10, 10],
                                         segmentation=[[5, 5, 15, 5, 15, 15, 5, 15]])], cats=cats)
    m, rej = _build([src], tmp_path / "out")
    assert rej["ann:1"][0] == reason
    rows = _rows(tmp_path / "out", "point_vqa")
    assert rows and {r["target"]["category"] for r in rows} == {"person"}
    assert not any(name in t["content"] for r in rows for t in r["conversations"])


def test_an_undecodable_image_gives_the_same_reject_detail_in_every_build(tmp_path):
    """Pillow's message names a BytesIO by its address: the detail (corpus content) drops it."""
    src = _coco(tmp_path, [_ann(1)])
    (tmp_path / "coco" / "img" / "a.jpg").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png at all")
    m1, rej1 = _build([src], tmp_path / "one")
    m2, rej2 = _build([src], tmp_path / "two")
    assert rej1 == rej2 and m1["fingerprint"] == m2["fingerprint"]
    reason, detail = next(iter(rej1.values()))
    assert reason == "unreadable_image" and " at 0x" not in detail


def test_every_reject_detail_is_freed_of_object_addresses():
    """The guarantee sits on Reject itself, whichever code wrote the detail."""
    from owl_data.records import Reject

    r = Reject("s", "i", "decode", "unreadable_image", "cannot identify <_io.BytesIO object at 0x7fa1c66bcef0>")
    assert r.detail == "cannot identify <_io.BytesIO object>"
    assert Reject("s", "i", "read", "bad", "<function f at 0x1f>, <b at 0xAB>").detail == "<function f>, <b>"
    kept = "bad byte at 0x10 in the file"  # an offset, not a repr: kept
    assert Reject("s", "i", "read", "bad", kept).detail == kept
