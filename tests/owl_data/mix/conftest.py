"""A tiny multi-task corpus written with the library's ShardWriter (4 tasks, 2 vqa sources)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from owl_data.corpus import schema as schemas
from owl_data.corpus.writer import ShardWriter, fingerprint

SIZES = {"vqa": {"vqav2": 12, "gqa": 4}, "caption": 5, "grounding": 7, "point_vqa": 9}


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (i * 40 % 256, 100, 200)).save(buf, format="PNG")
    return buf.getvalue()


def _turns(q: str, a: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


def write_tiny_corpus(root: Path, sizes: dict = SIZES, split: str = "train") -> Path:
    """Write ``root`` as a corpus with ``sizes`` rows per task (or per source); 3 images."""
    imgs = [_png(i) for i in range(3)]
    ids = [hashlib.sha256(b).hexdigest() for b in imgs]
    rows: dict[str, dict[str, int]] = {}
    with ShardWriter(root / "images", "images") as w:
        w.write({"image_id": i, "bytes": b, "format": "png", "width": 8, "height": 6, "split": split}
                for i, b in zip(ids, imgs))
    rows["images"] = {"all": 3}
    for task, size in sizes.items():
        per_source = size if isinstance(size, dict) else {f"{task}src": size}
        out = []
        for src, n in per_source.items():
            for j in range(n):
                r = {"id": f"{task}-{src}-{j}", "image_id": ids[j % 3], "source": src, "split": split,
                     "conversations": _turns(f"<image>q{j}", f"a{j}")}
                if task == "vqa":
                    r["answers"] = [f"a{j}"]
                elif task == "grounding":
                    r.update(expression=f"thing {j}", bbox=[0.1, 0.2, 0.5, 0.6])
                elif task == "point_vqa":
                    r.update(point={"x": 0.25, "y": 0.5}, point_origin="mask", kind="description",
                             target={"category": "car", "instance": str(j), "bbox": [0.0, 0.1, 0.4, 0.9]},
                             generator="templates-1.0/description")
                out.append(r)
        if out:
            with ShardWriter(root / task / split, task, max_batch_bytes=2000, max_shard_bytes=4000) as w:
                w.write(out)
        rows[task] = {split: len(out)}
    manifest = {"schema_version": schemas.SCHEMA_VERSION, "rows": rows, "fingerprint": fingerprint(root)}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    return write_tiny_corpus(tmp_path / "corpus")
