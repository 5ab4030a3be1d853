"""The owl-train commands on the tiny model: infer, eval, merge errors, stage flags."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from owl_train.cli.app import app

runner = CliRunner()


def _image(world):
    return next((world["root"] / "scenes" / "coco" / "val2014").glob("*.png"))


def test_infer_two_points_with_virtual_tokens(stage2_run, world):
    _, _, out = stage2_run
    res = runner.invoke(app, ["infer", "--model", str(out), "--image", str(_image(world)), "--point", "153.6,153.6",
                              "--point", "409.6,128", "--pixels", "--max-new-tokens", "4", "--max-pixels", "12544"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("(0.300, 0.600):") and lines[1].startswith("(0.800, 0.500):")


def test_infer_with_a_question(stage1_run, world):
    _, s1 = stage1_run
    res = runner.invoke(app, ["infer", "--model", str(s1), "--image", str(_image(world)), "--point", "0.5,0.5",
                              "--question", "What color is it?", "--max-new-tokens", "4", "--max-pixels", "12544"])
    assert res.exit_code == 0, res.output


def test_infer_errors_are_one_line_exit_2(stage1_run, world):
    _, s1 = stage1_run
    res = runner.invoke(app, ["infer", "--model", str(s1), "--image", str(_image(world)), "--point", "1.5,0.5"])
    assert res.exit_code == 2 and "outside the image" in res.output
    res = runner.invoke(app, ["merge", "--model", str(s1), "--out", str(world["root"] / "m")])
    assert res.exit_code == 2 and "no LoRA adapter" in res.output


def test_eval_reports_every_task(stage2_run, world, tmp_path):
    _, _, out = stage2_run
    res = runner.invoke(app, ["eval", "--model", str(out), str(world["corpus"]), "--limit", "4",
                              "--max-new-tokens", "6", "--max-pixels", "12544", "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "r.json").read_text())
    m = rep["metrics"]
    assert set(m) == {"vqa", "caption", "grounding", "point_vqa"}
    assert 0 <= m["vqa"]["accuracy"] <= 1 and 0 <= m["grounding"]["acc@0.5"] <= 1
    assert m["caption"]["bleu4"] is not None and m["point_vqa"]["hit_n"] > 0


def test_stage_flags_override_the_yaml(world, tmp_path):
    res = runner.invoke(app, ["stage1", "--config", "pipelines/stage1.yaml", "--model", str(world["tiny"]),
                              "--corpus", str(world["corpus"]), "--mix", str(world["mix"]), "--out",
                              str(tmp_path / "r"), "--max-steps", "1", "--set", "batch_size=2",
                              "--set", "max_pixels=12544", "--set", "progress=false", "--set", "grad_accum=1",
                              "--set", "num_workers=0", "--set", "tensorboard=false"])
    assert res.exit_code == 0, res.output
    assert "stage1: 1 steps" in res.stdout and (tmp_path / "r" / "model" / "config.json").is_file()
    bad = runner.invoke(app, ["stage1", "--config", "pipelines/stage1.yaml", "--set", "tune=qlora"])
    assert bad.exit_code == 2 and "tune='qlora'" in bad.output


def test_run_folder_and_resume_errors_name_the_flags(world, tmp_path):
    """The library raises FieldErrors naming out/resume/model; the CLI shows the flags as before."""
    base = ["stage1", "--model", str(world["tiny"]), "--corpus", str(world["corpus"]), "--mix", str(world["mix"]),
            "--max-steps", "1", "--set", "progress=false", "--set", "tensorboard=false"]
    (tmp_path / "file").write_text("x")
    (tmp_path / "prev" / "model").mkdir(parents=True)
    cases = [
        (["--out", str(tmp_path / "a"), "--resume", str(tmp_path / "nope")],
         f"error: --resume {tmp_path / 'nope'}: not a training checkpoint (no state.json)"),
        (["--out", str(tmp_path / "file")], f"error: --out {tmp_path / 'file'} is a file; name a folder for the run"),
        (["--out", str(tmp_path / "prev")], "resume with --resume latest or choose a new --out (nothing was overwritten)"),
    ]
    for extra, want in cases:
        res = runner.invoke(app, base + extra)
        assert res.exit_code == 2 and want in " ".join(res.output.split()), res.output
    res = runner.invoke(app, ["stage2", "--corpus", str(world["corpus"]), "--out", str(tmp_path / "s2")])
    assert res.exit_code == 2 and "give the initial model folder (--init)" in res.output
    res = runner.invoke(app, base + ["--out", str(tmp_path / "b"), "--resume", "latest"])
    assert res.exit_code == 0 and f"--resume latest: no checkpoint in {tmp_path / 'b' / 'checkpoints'}" in \
        " ".join(res.output.split())
