"""Every bad-input rule of the build, each on a small crafted input, plus the edge-case
images of ../shared/data/edge_cases through a COCO JSON written here.

After every build: items read = kept + rejected per source, and each reject has its reason.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageOps

from owl_data.build.driver import SourceSpec, run_build
from owl_data.build.config import BuildConfig
from tests.conftest import need_shared_data


def _rows(corpus: Path, table: str) -> list[dict]:
    return [r for f in sorted((corpus / table).rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def _coco(tmp: Path, images: list[dict], anns: list[dict]) -> Path:
    p = tmp / "ann.json"
    p.write_text(json.dumps({
        "images": images, "annotations": anns,
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}],
    }))
    return p


def _build(tmp: Path, root: Path, ann: Path, **cfg) -> tuple[dict, dict[tuple[str, str], str]]:
    out = tmp / "out"
    m = run_build([SourceSpec("coco", f"{root}:{ann}")], out, BuildConfig(**cfg)).manifest
    s = m["sources"]["coco"]
    assert s["items_read"] == s["items_kept"] + s["items_rejected"]
    rejects = {(r["source"], r["item"]): r["reason"] for r in _rows(out, "rejects")}
    assert len(rejects) == s["items_rejected"]
    return m, rejects


def _png(path: Path, w: int = 64, h: int = 48) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


def _poly(x1, y1, x2, y2):
    return [[x1, y1, x2, y1, x2, y2, x1, y2]]


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "images"
    r.mkdir()
    _png(r / "a.png")
    return r


def _img(i=1, name="a.png", w=64, h=48):
    return {"id": i, "file_name": name, "width": w, "height": h}


def _ann(i, seg=None, bbox=None, image_id=1, cat=1, crowd=0):
    a = {"id": i, "image_id": image_id, "category_id": cat, "iscrowd": crowd}
    if seg is not None:
        a["segmentation"] = seg
    if bbox is not None:
        a["bbox"] = bbox
    return a


def test_degenerate_polygon_is_rejected_never_read_as_a_box(tmp_path, root):
    ann = _coco(tmp_path, [_img()], [
        _ann(1, _poly(5, 5, 40, 40)),
        _ann(2, [[10, 10, 30, 30]]),                      # 2 vertices: pycocotools would call it a box
        _ann(3, [[10, 10, 30, 30, 10, 10, 30, 30]]),      # 4 vertices, 2 distinct
    ])
    m, rej = _build(tmp_path, root, ann)
    assert rej == {("coco", "ann:2"): "degenerate_polygon", ("coco", "ann:3"): "degenerate_polygon"}
    assert m["sources"]["coco"]["items_kept"] == 1


def test_boxes_clipped_or_rejected_and_non_finite(tmp_path, root):
    p = tmp_path / "ann.json"
    p.write_text(json.dumps({
        "images": [_img()], "categories": [{"id": 1, "name": "car"}],
        "annotations": [
            _ann(1, bbox=[-20, 10, 50, 30]),          # partly outside: clipped
            _ann(2, bbox=[100, 10, 20, 20]),          # wholly outside: reject
            _ann(3, seg=[[1, 1, float("nan"), 5, 9, 9]]),
        ],
    }, allow_nan=True))
    m, rej = _build(tmp_path, root, p)
    assert rej == {("coco", "ann:2"): "outside_image", ("coco", "ann:3"): "non_finite"}
    rows = [r for r in _rows(tmp_path / "out", "point_vqa") if r["target"]["instance"] == "1"]
    assert rows and all(r["point_origin"] == "box" for r in rows)
    assert rows[0]["target"]["bbox"] == pytest.approx([0.0, 10 / 48, 30 / 64, 40 / 48])


def test_absurd_coordinates_caught_before_native_mask_code(tmp_path, root):
    ann = _coco(tmp_path, [_img()], [_ann(1, [[1, 1, 2e8, 5, 9, 2e8, 3, 3]]), _ann(2, _poly(5, 5, 40, 40))])
    m, rej = _build(tmp_path, root, ann)
    assert rej == {("coco", "ann:1"): "absurd_coordinates"}


def test_paths_outside_the_source_are_rejected_never_opened(tmp_path, root):
    secret = tmp_path / "secret.png"
    _png(secret)
    ann = _coco(tmp_path, [_img(1, "../secret.png"), _img(2, str(secret)), _img(3)],
                [_ann(1, _poly(5, 5, 40, 40), image_id=1), _ann(2, _poly(5, 5, 40, 40), image_id=2),
                 _ann(3, _poly(5, 5, 40, 40), image_id=3)])
    m, rej = _build(tmp_path, root, ann)
    assert rej == {("coco", "ann:1"): "path_outside_source", ("coco", "ann:2"): "path_outside_source"}
    assert m["rows"]["images"]["all"] == 1


def test_decompression_bomb_and_corrupt_image(tmp_path, root):
    Image.new("1", (3000, 2000)).save(root / "big.png")
    (root / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    ann = _coco(tmp_path, [_img(1, "big.png", 3000, 2000), _img(2, "bad.png"), _img(3)],
                [_ann(1, _poly(5, 5, 40, 40), image_id=1), _ann(2, _poly(5, 5, 40, 40), image_id=2),
                 _ann(3, _poly(5, 5, 40, 40), image_id=3)])
    m, rej = _build(tmp_path, root, ann, max_image_pixels=1_000_000)
    assert rej == {("coco", "ann:1"): "too_large", ("coco", "ann:2"): "unreadable_image"}


def test_size_mismatch_rejects_the_image_items(tmp_path, root):
    ann = _coco(tmp_path, [_img(1, "a.png", 100, 100)], [_ann(1, _poly(5, 5, 40, 40))])
    m, rej = _build(tmp_path, root, ann)
    assert rej == {("coco", "ann:1"): "size_mismatch"}


def test_edge_case_images_through_coco(tmp_path):
    edge = need_shared_data("edge_cases")
    names = sorted(p.name for p in edge.iterdir())
    images, anns = [], []
    for i, name in enumerate(names, start=1):
        try:
            uw, uh = ImageOps.exif_transpose(Image.open(edge / name)).size
        except OSError:
            uw = uh = 100
        images.append({"id": i, "file_name": name, "width": uw, "height": uh})
        anns.append(_ann(i, bbox=[uw * 0.25, uh * 0.25, uw * 0.5, uh * 0.5], image_id=i))
    ann = _coco(tmp_path, images, anns)
    m, rej = _build(tmp_path, edge, ann)
    by_name = {im["id"]: im["file_name"] for im in images}
    assert {by_name[int(k[1].split(":")[1])]: v for k, v in rej.items()} == {"broken.png": "unreadable_image"}
    refs = {r["source_path"]: r["image_id"] for r in _rows(tmp_path / "out", "image_refs")}
    stored = {r["image_id"]: r for r in _rows(tmp_path / "out", "images")}
    raw6 = Image.open(edge / "exif_Landscape_6.jpg")
    s6 = stored[refs["exif_Landscape_6.jpg"]]
    assert (s6["width"], s6["height"]) == (raw6.height, raw6.width)
    for name in ("pil_sample_cmyk.jpg", "hopper_gray.jpg", "exif_Landscape_6.jpg"):
        img = Image.open(io.BytesIO(stored[refs[name]]["bytes"]))
        assert img.mode == "RGB" and img.size == (stored[refs[name]]["width"], stored[refs[name]]["height"])
    # untouched upright RGB JPEG: stored byte for byte
    assert stored[refs["exif_Landscape_1.jpg"]]["bytes"] == (edge / "exif_Landscape_1.jpg").read_bytes()
    assert "broken_exif_dpi.jpg" in refs
