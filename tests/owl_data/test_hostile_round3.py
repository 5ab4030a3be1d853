"""Hostile inputs to today's data features: ``build --scenes/--scene-size`` (and YAML
``default_scenes``), and ``stats``' layout-prior line. Bad input is one ``error:`` line (exit 2)
or a counted skip, never a traceback; an ignored flag changes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from owl_data.cli.app import app
from owl_data.corpus.layout_prior import description_pairs, read_description_rows
from owl_data.sources.synthetic.scenes import write_default_scenes
from tests.owl_data.mix.conftest import write_tiny_corpus

runner = CliRunner()


def _one_line_error(res) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and res.output.count("error:") == 1, res.output
    return res.output


@pytest.mark.parametrize("flag,value", [
    ("--scenes", "3_0:2"),        # int() takes underscores: 30 frames nobody asked for
    ("--scenes", "\u0663:2"),     # int() takes Arabic-Indic digits
    ("--scene-size", "5_12x256"),
    ("--scenes", "9" * 5000 + ":2"),  # past Python's int digit limit: still the format message
])
def test_scene_flags_take_ascii_whole_numbers_only(tmp_path, flag, value):
    res = runner.invoke(app, ["build", "--out", str(tmp_path / "c"), flag, value])
    out = _one_line_error(res)
    assert "write two whole numbers" in out and "Exceeds the limit" not in out
    assert not (tmp_path / "c").exists()


def test_scene_flags_with_source_are_checked_but_change_nothing(tmp_path):
    src = write_default_scenes(tmp_path / "scenes", seed=0, train=1, val=1, width=128, height=64)
    spec = f"cityscapes={src}"
    bad = runner.invoke(app, ["build", "--source", spec, "--out", str(tmp_path / "x"), "--scenes", "0:1"])
    assert "default_scenes.train=0" in _one_line_error(bad)
    plain = runner.invoke(app, ["build", "--source", spec, "--out", str(tmp_path / "a")])
    flagged = runner.invoke(app, ["build", "--source", spec, "--out", str(tmp_path / "b"),
                                  "--scenes", "9:9", "--scene-size", "1024x512"])
    assert plain.exit_code == 0 and flagged.exit_code == 0, flagged.output
    assert "ignored with --source" in flagged.output
    a, b = (json.loads((tmp_path / n / "manifest.json").read_text()) for n in "ab")
    # "ignored" means ignored: the manifest's config (and so the resume key) is the one without the flags
    assert b["build_config"] == a["build_config"] and b["fingerprint"] == a["fingerprint"]
    assert b["build_config"]["default_scenes"] == {"train": 3, "val": 2, "width": 512, "height": 256}


@pytest.mark.parametrize("name", ["it's", "run[1]", "a*b?"])
def test_stats_on_a_corpus_whose_path_has_quotes_or_glob_characters(tmp_path, name):
    corpus = write_tiny_corpus(tmp_path / name)
    res = runner.invoke(app, ["stats", str(corpus)])
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    assert "layout prior" in res.output and "not computed (no val description points)" in res.output


def test_stats_on_an_unreadable_shard_is_one_error_line(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "c")
    shard = sorted((corpus / "vqa").rglob("*.parquet"))[0]
    shard.write_bytes(b"PAR1 not really parquet PAR1")
    assert "cannot read its Parquet shards" in _one_line_error(runner.invoke(app, ["stats", str(corpus)]))


def test_layout_prior_skips_null_categories_as_it_skips_empty_ones(tmp_path):
    rows = [
        {"kind": "description", "image_id": "i", "point": {"x": 0.1, "y": 0.1}, "target": {"category": None}},
        {"kind": "description", "image_id": "i", "point": {"x": 0.2, "y": 0.2}, "target": {"category": ""}},
        {"kind": "description", "image_id": "i", "point": {"x": 0.3, "y": 0.3}, "target": {"category": "car"}},
    ]
    xy, cats = description_pairs(rows)
    assert cats == ["car"] and xy.tolist() == [[0.3, 0.3]]  # not a category called "None"


def test_stats_layout_prior_with_null_categories(tmp_path):
    """A corpus whose train split has null categories: the prior is fit on the others only."""
    src = write_tiny_corpus(tmp_path / "c")
    val = tmp_path / "v"
    write_tiny_corpus(val, split="val")
    shutil.copytree(val / "point_vqa" / "val", src / "point_vqa" / "val")
    for f in (src / "point_vqa" / "train").glob("*.parquet"):
        t = pq.read_table(f)
        rows = t.to_pylist()
        for i, r in enumerate(rows):
            if i % 3:  # two of the three images: every point null
                r["target"]["category"] = None
        import pyarrow as pa

        pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), f)
    n_train = len({(r["point"]["x"], r["image_id"]) for r in read_description_rows(src, "train")
                   if r["target"]["category"]})
    res = runner.invoke(app, ["stats", str(src)])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("layout prior"))
    assert n_train == 1  # the one image whose points keep their category
    assert f"fit on {n_train} train points" in line and "'None'" not in line and "majority class 'car'" in line


def test_description_rows_refuse_a_split_that_is_a_path(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "c")
    with pytest.raises(ValueError, match="not a split name"):
        read_description_rows(corpus, "../images")
