"""Hub-ready export: card configs, embedded images, offline load_dataset per task config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from owl_data.corpus import schema as schemas
from owl_data.export import ExportError, export_corpus, export_hf

ROOT = Path(__file__).resolve().parents[3]

_LOAD = r"""
import json, sys, datasets
out, tasks = sys.argv[1], sys.argv[2].split(",")
res = {}
for task in tasks:
    ds = datasets.load_dataset(out, task, cache_dir=sys.argv[3])
    res[task] = {}
    for split, d in ds.items():
        first = d[0]
        res[task][split] = {"rows": len(d), "image_type": type(first["image"]).__name__,
                            "size": list(first["image"].size), "id": first["id"],
                            "features": sorted(d.features)}
print(json.dumps(res))
"""


@pytest.fixture(scope="module")
def hf_export(drive_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "export"
    rep = export_hf(drive_corpus, out)
    return out, rep


def _load_offline(out: Path, tasks: list[str], tmp: Path) -> dict:
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "hf_home")}
    env.pop("HF_TOKEN", None)
    done = subprocess.run([sys.executable, "-c", _LOAD, str(out), ",".join(tasks), str(tmp / "cache")],
                          env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_loads_offline_per_task_config(hf_export, drive_corpus, tmp_path):
    out, rep = hf_export
    assert set(rep.rows) == {"point_vqa", "grounding"}
    got = _load_offline(out, ["point_vqa", "grounding"], tmp_path)
    manifest = json.loads((drive_corpus / "manifest.json").read_text())
    for task, per in got.items():
        for split, r in per.items():
            assert r["rows"] == manifest["rows"][task][split] == rep.rows[task][split]
            assert r["image_type"].endswith("ImageFile") or r["image_type"] == "Image"
            assert r["size"] == [1600, 900]
            assert "image" in r["features"] and "conversations" in r["features"]
    assert "point" in got["point_vqa"]["train"]["features"]
    assert "bbox" in got["grounding"]["train"]["features"]


def test_every_image_cell_has_bytes(hf_export, drive_corpus):
    out, rep = hf_export
    con = duckdb.connect()
    for task in rep.rows:
        total, null_bytes = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE image.bytes IS NULL OR octet_length(image.bytes) = 0) "
            f"FROM read_parquet('{out}/{task}/*/*.parquet')").fetchone()
        assert total == sum(rep.rows[task].values()) and null_bytes == 0
    # the embedded bytes are the stored ones, byte for byte
    stored = dict(con.execute(f"SELECT image_id, sha256(bytes) FROM read_parquet('{drive_corpus}/images/*.parquet')")
                  .fetchall())
    embedded = con.execute(f"SELECT DISTINCT image_id, sha256(image.bytes) FROM read_parquet('{out}/*/*/*.parquet', "
                           "union_by_name = true)").fetchall()
    assert embedded and all(stored[i] == h == i for i, h in embedded)


def test_parquet_carries_feature_and_schema_metadata(hf_export):
    out, _ = hf_export
    f = next((out / "point_vqa" / "train").glob("part-*.parquet"))
    meta = pq.read_schema(f).metadata
    feats = json.loads(meta[b"huggingface"])["info"]["features"]
    assert feats["image"]["_type"] == "Image"
    assert meta[b"owl.schema_version"] == schemas.SCHEMA_VERSION.encode()
    assert all(pq.ParquetFile(f).metadata.row_group(i).num_rows <= 100
               for i in range(pq.ParquetFile(f).num_row_groups))


def test_card_names_one_config_per_task_with_its_splits(hf_export):
    out, rep = hf_export
    card = (out / "README.md").read_text()
    yaml_part = card.split("---")[1]
    import yaml

    configs = {c["config_name"]: c for c in yaml.safe_load(yaml_part)["configs"]}
    assert set(configs) == set(rep.rows)
    assert configs["point_vqa"]["default"] is True
    for task, c in configs.items():
        assert {d["split"] for d in c["data_files"]} == set(rep.rows[task])
    side = json.loads((out / "owl_export.json").read_text())
    assert side["format"] == "hf" and side["coords"]["name"] is None


def test_synthetic_corpus_has_train_and_val(syn_corpus, tmp_path):
    rep = export_hf(syn_corpus, tmp_path / "x")
    assert set(rep.rows["point_vqa"]) == {"train", "val"}
    got = _load_offline(tmp_path / "x", ["point_vqa"], tmp_path)
    assert {s: r["rows"] for s, r in got["point_vqa"].items()} == rep.rows["point_vqa"]


def test_refuses_to_clobber_and_rejects_coords(syn_corpus, tmp_path):
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("precious")
    with pytest.raises(ExportError, match="not an earlier result"):
        export_hf(syn_corpus, keep)
    assert (keep / "notes.txt").read_text() == "precious"
    with pytest.raises(ExportError, match="inside"):
        export_hf(syn_corpus, syn_corpus / "hf")
    with pytest.raises(ExportError, match="^coords applies") as e:  # the field, not the flag (the CLI maps it)
        export_corpus(syn_corpus, tmp_path / "y", "hf", coords="qwen")
    assert e.value.field == "coords"
    with pytest.raises(ExportError, match="^format 'webdataset'") as e:
        export_corpus(syn_corpus, tmp_path / "y", "webdataset")
    assert e.value.field == "format"
    with pytest.raises(FileNotFoundError):
        export_hf(tmp_path, tmp_path / "z")
