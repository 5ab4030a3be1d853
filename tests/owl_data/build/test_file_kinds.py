"""Builds over hostile files: a FIFO named like a frame or an annotation file, garbage pixels
behind a valid header, a file over ``max_file_bytes``. Each is a reject (or one clear error),
never a hang, a blank image or an out-of-memory end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from owl_data.build.config import BuildConfig
from owl_data.build.driver import SourceSpec, run_build
from owl_data.errors import FieldError
from owl_data.sources import SourceError
from tests.helpers import fails_after
from tests.owl_data.helpers import garbage_idat_png

STEM = "city_000000_0000{:02d}"


@pytest.fixture(autouse=True)
def no_hang():
    """Fail instead of blocking the suite when the test runs past 60 s."""
    with fails_after(60, "the build"):
        yield


def _rejects(out: Path) -> dict[str, tuple[str, str, str]]:
    rows = [r for f in sorted((out / "rejects").rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    return {r["item"]: (r["stage"], r["reason"], r["detail"]) for r in rows}


def _build(sources: list[SourceSpec], out: Path, **cfg) -> tuple[dict, dict]:
    m = run_build(sources, out, BuildConfig(**cfg)).manifest
    for s in m["sources"].values():
        assert s["items_read"] == s["items_kept"] + s["items_rejected"], s
    return m, _rejects(out)


def _frame(root: Path, k: int) -> tuple[Path, Path]:
    """Frame ``k`` of city ``city``: a car on a road; (image path, instanceIds path)."""
    img = root / "leftImg8bit/train/city" / f"{STEM.format(k)}_leftImg8bit.png"
    gt = root / "gtFine/train/city" / f"{STEM.format(k)}_gtFine_instanceIds.png"
    img.parent.mkdir(parents=True, exist_ok=True)
    gt.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(img)
    inst = np.full((48, 64), 7, np.uint16)
    inst[12:36, 16:48] = 26001
    Image.fromarray(inst).save(gt)
    return img, gt


def _src(k: int) -> str:
    return f"leftImg8bit/train/city/{STEM.format(k)}_leftImg8bit.png"


def test_fifo_frames_and_maps_are_rejects_not_hangs(tmp_path):
    root = tmp_path / "cs"
    _frame(root, 0)
    img1, _ = _frame(root, 1)
    img1.unlink()
    os.mkfifo(img1)  # a FIFO named like a frame: Image.open on it blocked forever
    _, gt2 = _frame(root, 2)
    gt2.unlink()
    os.mkfifo(gt2)  # a FIFO named like its instanceIds partner
    m, rej = _build([SourceSpec("cityscapes", str(root))], tmp_path / "out")
    s = m["sources"]["cityscapes"]
    assert (s["items_read"], s["items_kept"], s["items_rejected"]) == (3, 1, 2)
    assert rej[_src(1)][:2] == ("read", "not_a_regular_file")
    assert rej[_src(1)][2].endswith("is a FIFO, not a regular file")
    assert rej[_src(2)][:2] == ("read", "not_a_regular_file")  # a partner that is not a regular file: refused, not missing


def _garbage_png() -> bytes:
    """64x48 grey PNG with a valid IHDR and an IDAT of random bytes (correct CRC)."""
    return garbage_idat_png(np.full((48, 64, 3), 90, np.uint8), seed=3)


def test_garbage_pixels_and_oversized_files_are_rejected(tmp_path):
    root = tmp_path / "cs"
    _frame(root, 0)
    img1, _ = _frame(root, 1)
    img1.write_bytes(_garbage_png())  # header fine, pixels not: was kept as a black image
    img2, _ = _frame(root, 2)
    with open(img2, "ab") as f:  # a small PNG followed by 2 MiB of junk
        f.write(b"\0" * (2 << 20))
    m, rej = _build([SourceSpec("cityscapes", str(root))], tmp_path / "out", max_file_bytes=1 << 20)
    s = m["sources"]["cityscapes"]
    assert (s["items_read"], s["items_kept"], s["items_rejected"]) == (3, 1, 2)
    assert rej[f"{_src(1)}#26001"][:2] == ("decode", "unreadable_image")
    assert rej[_src(2)][:2] == ("read", "file_too_large")
    assert f"over the limit of {1 << 20} (max_file_bytes)" in rej[_src(2)][2]
    assert m["build_config"]["max_file_bytes"] == 1 << 20
    # the same frame is kept under the default limit (256 MiB)
    m, rej = _build([SourceSpec("cityscapes", str(root))], tmp_path / "out2")
    assert m["sources"]["cityscapes"]["items_kept"] == 2 and _src(2) not in rej


def _coco(tmp: Path) -> tuple[Path, Path]:
    images = tmp / "coco/img"
    images.mkdir(parents=True)
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(images / "a.jpg")
    (images / "b.png").write_bytes(_garbage_png())
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
                      {"id": 2, "file_name": "b.png", "width": 64, "height": 48}],
           "annotations": [{"id": k, "image_id": k, "category_id": 1, "bbox": [10, 10, 40, 30], "iscrowd": 0,
                            "segmentation": [[10, 10, 50, 10, 50, 40, 10, 40]]} for k in (1, 2)],
           "categories": [{"id": 1, "name": "car"}]}
    ann = tmp / "coco/ann.json"
    ann.write_text(json.dumps(doc))
    return images, ann


def test_coco_garbage_image_rejected_and_fifo_annotation_is_one_error(tmp_path):
    images, ann = _coco(tmp_path)
    m, rej = _build([SourceSpec("coco", f"{images}:{ann}")], tmp_path / "out")
    assert (m["sources"]["coco"]["items_kept"], m["sources"]["coco"]["items_rejected"]) == (1, 1)
    assert [v[:2] for v in rej.values()] == [("decode", "unreadable_image")]
    ann.unlink()
    os.mkfifo(ann)  # was: json.load blocked forever
    with pytest.raises(SourceError) as err:
        run_build([SourceSpec("coco", f"{images}:{ann}")], tmp_path / "out3", BuildConfig())
    assert str(err.value) == f"cannot read COCO annotation file {ann} is a FIFO, not a regular file"


def test_max_file_bytes_is_checked():
    assert BuildConfig().max_file_bytes == 256 * 2**20
    with pytest.raises(FieldError) as err:
        BuildConfig(max_file_bytes=0)
    assert err.value.field == "max_file_bytes"
