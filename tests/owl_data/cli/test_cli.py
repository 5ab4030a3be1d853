"""The `owl-data` command line: build, stats, validate and their errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from owl_data.cli.app import app
from owl_data.corpus.gallery import GalleryConfig, GalleryError
from owl_data.sources.synthetic.scenes import DefaultScenes, write_default_scenes
from tests.helpers import one_line_error

runner = CliRunner()


def test_build_stats_validate_on_drawn_scenes(tmp_path):
    scenes = write_default_scenes(tmp_path / "scenes")
    out = tmp_path / "corpus"
    res = runner.invoke(app, ["build", "--source", f"cityscapes={scenes}", "--out", str(out), "--seed", "3"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["build_config"]["seed"] == 3 and m["fingerprint"] in res.output
    res = runner.invoke(app, ["stats", str(out)])
    assert res.exit_code == 0 and "point_vqa" in res.output and "car" in res.output
    assert runner.invoke(app, ["validate", str(out)]).exit_code == 0


def test_validate_reports_a_tampered_corpus(tmp_path):
    scenes = write_default_scenes(tmp_path / "scenes")
    out = tmp_path / "corpus"
    assert runner.invoke(app, ["build", "--source", f"cityscapes={scenes}", "--out", str(out)]).exit_code == 0
    m = json.loads((out / "manifest.json").read_text())
    m["rows"]["point_vqa"]["train"] += 1
    (out / "manifest.json").write_text(json.dumps(m))
    res = runner.invoke(app, ["validate", str(out)])
    assert res.exit_code == 1 and "row counts" in res.output


def test_clear_errors(tmp_path):
    res = runner.invoke(app, ["build", "--source", "nosuch=/x", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "unknown source 'nosuch'" in res.output
    res = runner.invoke(app, ["build", "--source", "cityscapes", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "NAME=PATH" in res.output
    res = runner.invoke(app, ["build", "--source", f"cityscapes={tmp_path / 'missing'}", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "error" in res.output
    res = runner.invoke(app, ["validate", str(tmp_path)])
    assert res.exit_code == 2 and "manifest.json is missing" in res.output


def test_warns_when_a_source_keeps_nothing(tmp_path):
    (tmp_path / "imgs").mkdir()
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "JPEGImages/a.jpg", "width": 10, "height": 10}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 0}],
        "categories": [{"id": 1, "name": "car"}],
    }))
    res = runner.invoke(app, ["build", "--source", f"coco={tmp_path / 'imgs'}:{ann}", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0
    assert "kept no item of 1: mostly missing_image" in res.output


def test_stats_refuses_a_folder_that_is_not_a_corpus(tmp_path):
    res = runner.invoke(app, ["stats", str(tmp_path)])
    assert res.exit_code == 2 and "manifest.json is missing" in res.output


def test_build_embedded_default_with_scene_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "corpus"
    res = runner.invoke(app, ["build", "--out", str(out), "--scenes", "2:1", "--scene-size", "320x160"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["build_config"]["default_scenes"] == {"train": 2, "val": 1, "width": 320, "height": 160}
    assert m["rows"]["images"]["all"] == 3
    cache = DefaultScenes(train=2, val=1, width=320, height=160).cache_name(seed=0)
    assert all(cache in s["spec"] for s in m["sources"].values())  # the settings name the cache folder
    assert (tmp_path / "cache" / "owl-vl" / cache / "leftImg8bit" / "val" / "drawburg").is_dir()
    res = runner.invoke(app, ["build", "--out", str(out), "--scenes", "80"])
    assert res.exit_code == 2 and "--scenes '80'" in res.output
    res = runner.invoke(app, ["build", "--out", str(out), "--scene-size", "10x10"])
    assert res.exit_code == 2 and "default_scenes.width=10" in res.output


def test_bad_limits_and_empty_tasks_say_what_is_wrong(tiny, tmp_path):
    out = one_line_error(runner.invoke(app, ["show", str(tiny), "--out", str(tmp_path / "g"),
                                              "--limit", "99999999999999999999"]))
    assert "--limit" in out and "1..1,000,000" in out
    with pytest.raises(GalleryError, match="limit"):
        GalleryConfig(limit=0)
    out = one_line_error(runner.invoke(app, ["mix", str(tiny), "-r", "1", "--tasks", "", "--out",
                                              str(tmp_path / "m")]))
    assert "no task given" in out


@pytest.mark.parametrize("flag,value", [
    ("--scenes", "3_0:2"),        # int() takes underscores: 30 frames nobody asked for
    ("--scenes", "\u0663:2"),     # int() takes Arabic-Indic digits
    ("--scene-size", "5_12x256"),
    ("--scenes", "9" * 5000 + ":2"),  # past Python's int digit limit: still the format message
])
def test_scene_flags_take_ascii_whole_numbers_only(tmp_path, flag, value):
    res = runner.invoke(app, ["build", "--out", str(tmp_path / "c"), flag, value])
    out = one_line_error(res)
    assert "write two whole numbers" in out and "Exceeds the limit" not in out
    assert not (tmp_path / "c").exists()


def test_scene_flags_with_source_are_checked_but_change_nothing(tmp_path):
    src = write_default_scenes(tmp_path / "scenes", seed=0, train=1, val=1, width=128, height=64)
    spec = f"cityscapes={src}"
    bad = runner.invoke(app, ["build", "--source", spec, "--out", str(tmp_path / "x"), "--scenes", "0:1"])
    assert "default_scenes.train=0" in one_line_error(bad)
    plain = runner.invoke(app, ["build", "--source", spec, "--out", str(tmp_path / "a")])
    flagged = runner.invoke(app, ["build", "--source", spec, "--out", str(tmp_path / "b"),
                                  "--scenes", "9:9", "--scene-size", "1024x512"])
    assert plain.exit_code == 0 and flagged.exit_code == 0, flagged.output
    assert "ignored with --source" in flagged.output
    a, b = (json.loads((tmp_path / n / "manifest.json").read_text()) for n in "ab")
    # "ignored" means ignored: the manifest's config (and so the resume key) is the one without the flags
    assert b["build_config"] == a["build_config"] and b["fingerprint"] == a["fingerprint"]
    assert b["build_config"]["default_scenes"] == {"train": 3, "val": 2, "width": 512, "height": 256}
