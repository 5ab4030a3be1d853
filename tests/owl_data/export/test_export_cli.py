"""`owl-data export` and `owl-data import-llava` through the command line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from owl_data.cli.app import app

runner = CliRunner()


def test_export_each_format_and_import_back(syn_corpus, tmp_path):
    res = runner.invoke(app, ["export", str(syn_corpus), "--format", "hf", "--out", str(tmp_path / "hf")])
    assert res.exit_code == 0, res.output
    assert "point_vqa/train" in res.output and (tmp_path / "hf" / "README.md").is_file()
    res = runner.invoke(app, ["export", str(syn_corpus), "--format", "llava", "--out", str(tmp_path / "l"),
                              "--coords", "norm"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "l" / "owl_export.json").read_text())["coords"]["name"] == "norm"
    res = runner.invoke(app, ["export", str(syn_corpus), "--format", "sharegpt", "--out", str(tmp_path / "s")])
    assert res.exit_code == 0 and (tmp_path / "s" / "dataset_info.json").is_file()
    res = runner.invoke(app, ["import-llava", str(tmp_path / "l"), "--out", str(tmp_path / "back")])
    assert res.exit_code == 0, res.output
    assert runner.invoke(app, ["validate", str(tmp_path / "back")]).exit_code == 0


def test_clear_errors(syn_corpus, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    cases = [
        (["export", str(syn_corpus), "--format", "webdataset", "--out", str(tmp_path / "x")], "--format"),
        (["export", str(syn_corpus), "--format", "llava", "--out", str(tmp_path / "x"), "--coords", "percent"],
         "qwen, norm, pixel"),
        (["export", str(syn_corpus), "--format", "hf", "--out", str(tmp_path / "x"), "--coords", "qwen"], "--coords"),
        (["export", str(tmp_path / "nothing"), "--format", "hf", "--out", str(tmp_path / "x")], "not an Owl-VL corpus"),
        (["export", str(syn_corpus), "--format", "llava", "--out", str(tmp_path / "mine")], "not an earlier result"),
        (["export", str(syn_corpus), "--format", "llava", "--out", str(syn_corpus)], "inside"),
        (["import-llava", str(tmp_path), "--out", str(tmp_path / "y")], "llava or sharegpt export"),
    ]
    for args, msg in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and msg in res.output, (args, res.output)
        assert res.exception is None or isinstance(res.exception, SystemExit)


def test_an_export_of_another_format_is_replaced_only_with_overwrite(syn_corpus, tmp_path):
    from tests.helpers import one_line_error, snapshot

    out = tmp_path / "ex"
    assert runner.invoke(app, ["export", str(syn_corpus), "--format", "llava", "--out", str(out)]).exit_code == 0
    before = snapshot(out)
    for fmt in ("hf", "sharegpt"):
        res = runner.invoke(app, ["export", str(syn_corpus), "--format", fmt, "--out", str(out)])
        text = one_line_error(res).replace("\n", "")
        assert f"--out {out} holds a llava export; a {fmt} export would replace it" in text and "--overwrite" in text
        assert snapshot(out) == before  # nothing touched
    # the same format replaces its earlier export; --overwrite replaces another format's
    assert runner.invoke(app, ["export", str(syn_corpus), "--format", "llava", "--out", str(out)]).exit_code == 0
    res = runner.invoke(app, ["export", str(syn_corpus), "--format", "hf", "--out", str(out), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "owl_export.json").read_text())["format"] == "hf" and (out / "README.md").is_file()
    assert not list(out.glob("*.json"))[1:] and not (out / "images").exists()  # the llava files are gone
