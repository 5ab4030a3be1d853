"""Builders and readers shared by the owl_data tests: crafted images and sources, checked builds."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from owl_data.build.driver import SourceSpec, run_build
from owl_data.build.config import BuildConfig
from owl_data.corpus.validate import validate_corpus


def table_rows(corpus: Path, table: str) -> list[dict]:
    """Every row of ``corpus/table`` as dicts, shards in path order."""
    return [r for f in sorted((corpus / table).rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def write_png(path: Path, w: int = 80, h: int = 60) -> None:
    """A ``w`` x ``h`` RGB noise PNG (seed 0) at ``path``, parents made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, format="PNG")


def build_checked(out: Path, *specs: SourceSpec) -> dict:
    """Build ``specs`` into ``out`` with the default config; assert the manifest's counts add up and the
    corpus validates; return the manifest."""
    m = run_build(list(specs), out, BuildConfig()).manifest
    for name, s in m["sources"].items():
        assert s["items_read"] == s["items_kept"] + s["items_rejected"], name
        assert sum(s["rejects"].values()) == s["items_rejected"], name
    rep = validate_corpus(out)
    assert rep.ok, rep.problems
    return m


def lcb_source(tmp: Path, lines: list[object], raw: bytes = b"") -> Path:
    """A llava_caps_boxes source: one 80x60 image ``a.png`` and a JSONL of ``lines``."""
    d = tmp / "lcb"
    write_png(d / "a.png")
    text = "\n".join(json.dumps(x) for x in lines).encode() + raw
    (d / "x_caps_boxes.jsonl").write_bytes(text)
    return d


def garbage_idat_png(arr: np.ndarray, seed: int) -> bytes:
    """``arr`` as a PNG whose header (IHDR) is valid and whose IDAT is ``seed``'s random bytes with a
    correct CRC: it opens, and fails only when its pixels are decoded."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    png = buf.getvalue()
    i = png.index(b"IDAT")
    n = struct.unpack(">I", png[i - 4:i])[0]
    junk = bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8))
    return png[:i + 4] + junk + struct.pack(">I", zlib.crc32(b"IDAT" + junk)) + png[i + 8 + n:]
