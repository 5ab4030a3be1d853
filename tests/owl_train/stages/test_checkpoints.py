"""Run folders and model folders (owl_train.stages.checkpoints): refusals and one-line errors."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image
from typer.testing import CliRunner

from owl_data.errors import FieldError
from owl_train.cli.app import app, flag_message
from owl_train.stages.checkpoints import check_run_folder

runner = CliRunner()
IMG = Image.new("RGB", (64, 48), (10, 200, 30))

def test_out_refuses_a_foreign_or_previous_folder(world, tmp_path):
    foreign = tmp_path / "notes"
    (foreign / "logs").mkdir(parents=True)
    (foreign / "notes.txt").write_text("precious")
    (foreign / "logs" / "metrics.jsonl").write_text('{"x": 1}\n')
    res = runner.invoke(app, ["stage1", "--model", str(world["tiny"]), "--corpus", str(world["corpus"]),
                              "--mix", str(world["mix"]), "--out", str(foreign), "--max-steps", "1"])
    assert res.exit_code == 2 and "not an Owl-VL run folder" in res.output and "Traceback" not in res.output
    assert (foreign / "notes.txt").read_text() == "precious"
    assert (foreign / "logs" / "metrics.jsonl").read_text() == '{"x": 1}\n'
    prev = tmp_path / "prev"
    (prev / "model").mkdir(parents=True)
    with pytest.raises(FieldError, match="resume with `resume` latest") as exc:
        check_run_folder(prev, None)
    assert exc.value.field == "out" and flag_message(exc.value) == (
        f"--out {prev} already holds a run (model/, checkpoints or logs): resume with --resume latest or choose "
        "a new --out (nothing was overwritten)")
    check_run_folder(prev, "latest")
    (tmp_path / "s2" / "stage2-mix").mkdir(parents=True)
    check_run_folder(tmp_path / "s2", None)  # a stage-2 run that stopped before its first step


def test_model_folder_faults_are_one_line_errors(stage1_run, world, tmp_path):
    _, s1 = stage1_run
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{}")  # was: a default 7B-sized model allocated (OOM kill)
    res = runner.invoke(app, ["stage2", "--init", str(bad), "--corpus", str(world["corpus"]), "--out",
                              str(tmp_path / "s2"), "--max-steps", "1"])
    assert res.exit_code == 2 and "not a Qwen2-VL model config" in res.output
    img = tmp_path / "img.png"
    IMG.save(img)
    notok = tmp_path / "notok"
    shutil.copytree(world["tiny"], notok)
    (notok / "tokenizer.json").write_text("garbage")
    for args in (["infer", "--model", str(notok), "--image", str(img), "--point", "0.5,0.5"],
                 ["eval", "--model", str(notok), str(world["corpus"]), "--tasks", "vqa", "--limit", "1"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and "tokenizer.json is not valid JSON" in res.output, res.output
    wide = tmp_path / "wide.png"
    Image.new("RGB", (10000, 20)).save(wide)
    res = runner.invoke(app, ["infer", "--model", str(world["tiny"]), "--image", str(wide), "--point", "0.5,0.5"])
    assert res.exit_code == 2 and "aspect ratio" in res.output  # was: exit 0 with an empty answer
    res = runner.invoke(app, ["merge", "--model", str(world["tiny"]), "--out", str(tmp_path / "m")])
    assert res.exit_code == 2 and "no LoRA adapter" in res.output
    ck = sorted((s1 / "checkpoints").glob("step-*"))[-1]
    for target in (ck, tmp_path):
        res = runner.invoke(app, ["zero-to-fp32", str(target), "--out", str(tmp_path / "z")])
        assert res.exit_code == 2 and "Traceback" not in res.output
    assert "single-process checkpoint" in runner.invoke(app, ["zero-to-fp32", str(ck), "--out",
                                                              str(tmp_path / "z")]).output
