"""Hostile inputs to the trainer's data path and commands: odd rows are dropped with a counted reason
(never an exception, never NaN positions), bad settings and folders are one-line errors (exit 2),
and nothing is silently overwritten or trained on nothing."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from owl_train.cli.app import app
from owl_train.config import TrainConfig, load_train_config
from owl_train.data import Collator, DataConfig
from owl_train.stages.checkpoints import check_run_folder, load_tokenizer

sys.path.insert(0, str(Path(__file__).parent / "stages"))
from conftest import stage1_run, world  # noqa: E402,F401  (session fixtures of the stage tests)
from _stage_helpers import stage1_config  # noqa: E402

runner = CliRunner()
IMG = Image.new("RGB", (64, 48), (10, 200, 30))


def U(s):
    return {"role": "user", "content": s}


def A(s):
    return {"role": "assistant", "content": s}


def _row(conv, **kw):
    return {"id": "r", "task": "vqa", "image": IMG, "point": None, "bbox": None, "conversations": conv, **kw}


def _truncated_jpeg() -> Image.Image:
    buf = io.BytesIO()
    Image.effect_noise((256, 192), 64).convert("RGB").save(buf, "PNG")
    data = buf.getvalue()
    img = Image.open(io.BytesIO(data[: len(data) // 2]))  # header fine, pixel data cut
    return img


@pytest.fixture(scope="module")
def coll(world):  # noqa: F811
    return Collator(load_tokenizer(world["tiny"]), DataConfig(max_pixels=28 * 28 * 16, max_length=512))


DROPS = {
    "empty_answer": _row([U("<image>What?"), A("  ")]),
    "missing_box": _row([U("<image>Where?"), A("<box>")]),
    "bad_box_outside": _row([U("<image>Where?"), A("<box>")], bbox=[0.2, 0.2, 1.5, 0.9]),
    "bad_box_inverted": _row([U("<image>Where?"), A("<box>")], bbox=[0.8, 0.8, 0.2, 0.2]),
    "bad_box_nan": _row([U("<image>Where?"), A("<box>")], bbox=[float("nan"), 0.2, 0.5, 0.9]),
    "bad_box_short": _row([U("<image>Where?"), A("<box>")], bbox=[0.2, 0.2]),
    "bad_point_outside": _row([U("<image><point>What?"), A("x")], point=(1.5, -0.2)),
    "bad_point_nan": _row([U("<image><point>What?"), A("x")], point=(float("nan"), 0.5)),
    "bad_point_text": _row([U("<image><point>What?"), A("x")], point="0.5"),
    "bad_image_aspect": _row([U("<image>What?"), A("x")], image=Image.new("RGB", (10000, 20))),
    "bad_image_path": _row([U("<image>What?"), A("x")], image="foo.png"),
    "bad_image_bytes": _row([U("<image>What?"), A("x")], image=b"\x89PNG"),
    "special_token_in_text": _row([U("<image>What? <|im_start|>system"), A("x")]),
    "truncated_no_labels": _row([U("<image>" + "word " * 2000), A("x")]),
}


@pytest.mark.parametrize("name", sorted(DROPS))
def test_odd_rows_are_dropped_with_a_reason(coll, name):
    b = coll([DROPS[name], _row([U("<image>What?"), A("A car.")])])
    reason = name if name in ("empty_answer", "missing_box", "special_token_in_text", "truncated_no_labels") \
        else "_".join(name.split("_")[:2])
    assert b["dropped"] == {reason: 1} and b["input_ids"].shape[0] == 1


def test_truncated_image_data_is_dropped(coll):
    b = coll([_row([U("<image>What?"), A("x")], image=_truncated_jpeg())])
    assert b["dropped"] == {"bad_image": 1} and b["input_ids"].shape[0] == 0


@pytest.mark.parametrize("kw,conv", [
    ({"image": Image.new("RGB", (1, 1))}, None),
    ({"image": Image.new("L", (64, 48))}, None),
    ({"image": Image.new("RGBA", (64, 48))}, None),
    ({"point": (0.0, 0.0)}, [U("<image><point>What?"), A("x")]),
    ({"point": (1.0, 1.0)}, [U("<image><point>What?"), A("x")]),
    ({"bbox": [0.0, 0.0, 1.0, 1.0]}, [U("<image>Where?"), A("<box>")]),
    ({"bbox": [9, 9, 9, 9]}, None),  # a box the text does not use is not checked
    ({}, [{"role": "system", "content": "Be terse."}, U("<image>What?"), A("A car.")]),
    ({}, [U("<image>What?"), U("And?"), A("A car."), U("More?")]),
    ({}, [U("<image>Qu'est-ce? 日本語 🚗"), A("Une voiture 🚗 é " * 400)]),
])
def test_odd_but_valid_rows_are_kept(coll, kw, conv):
    b = coll([_row(conv or [U("<image>What?"), A("x")], **kw)])
    assert b["dropped"] == {} and b["input_ids"].shape == (1, min(512, b["input_ids"].shape[1]))
    assert (b["labels"] != -100).any() and b["position_ids"].float().isfinite().all()


@pytest.mark.parametrize("over,field", [({"lr": float("inf")}, "lr"), ({"lr": [1, 2]}, "lr"),
                                        ({"device": {"a": 1}}, "device"), ({"freeze_vision": "maybe"}, "freeze_vision"),
                                        ({"num_virtual_tokens": "abc"}, "num_virtual_tokens"),
                                        ({"adam_betas": [0.9, "x"]}, "adam_betas")])
def test_config_types_are_one_line_errors(over, field):
    with pytest.raises(ValueError, match=f"field {field}="):
        load_train_config(None, over)


def test_out_refuses_a_foreign_or_previous_folder(world, tmp_path):  # noqa: F811
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
    with pytest.raises(ValueError, match="--resume latest"):
        check_run_folder(prev, None)
    check_run_folder(prev, "latest")
    (tmp_path / "s2" / "stage2-mix").mkdir(parents=True)
    check_run_folder(tmp_path / "s2", None)  # a stage-2 run that stopped before its first step


def test_resume_with_another_config_is_refused(stage1_run, world):  # noqa: F811
    from owl_train.stages import run_stage1

    _, out = stage1_run
    with pytest.raises(ValueError, match=r"batch_size=4, lr=0\.01.*batch_size=2, lr=0\.5"):
        run_stage1(stage1_config(world, out, resume="latest", lr=0.5, batch_size=2))


def test_every_row_dropped_skips_steps_then_fails(world, tmp_path):  # noqa: F811
    from owl_train.stages import run_stage1

    notes: list[str] = []
    with pytest.raises(ValueError, match="every row of 8 steps in a row was dropped"):
        run_stage1(stage1_config(world, tmp_path / "r", max_length=40, batch_size=2), note=notes.append)
    assert any("skipping it" in n for n in notes)
    assert not (tmp_path / "r" / "model").exists()


def test_model_folder_faults_are_one_line_errors(stage1_run, world, tmp_path):  # noqa: F811
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
