"""The `owl-train` command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from owl_train import __version__
from owl_train.cli.app import app
from tests.helpers import one_line_error

ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()


def test_version_is_a_subcommand():
    res = CliRunner().invoke(app, ["version"])
    assert res.exit_code == 0 and res.output.strip() == __version__


def test_init_tiny_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "trained").mkdir()
    weights = tmp_path / "trained" / "model.safetensors"
    weights.write_bytes(b"trained weights")
    res = CliRunner().invoke(app, ["init-tiny", str(tmp_path / "trained")])
    assert res.exit_code == 2 and "not an empty folder" in res.output
    assert weights.read_bytes() == b"trained weights"


def test_bad_train_yaml_is_one_line_naming_the_place(tmp_path):

    from owl_train.stages.config import load_train_config, parse_overrides

    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  a: [1,\n b: : :\n")
    with pytest.raises(ValueError, match=r"bad.yaml: not valid YAML \(line \d+, column \d+\)"):
        load_train_config(bad)
    with pytest.raises(ValueError, match="not valid YAML"):
        parse_overrides(["lr=[1,"])


def test_infer_config_rejects_non_positive_token_budget():

    from owl_train.infer import InferConfig

    with pytest.raises(ValueError, match="max_new_tokens"):
        InferConfig(max_new_tokens=-1)


def test_infer_question_takes_text_only(tmp_path):
    from PIL import Image

    from owl_train.infer import answer

    with pytest.raises(ValueError, match="question text only"):
        answer(None, Image.new("RGB", (56, 56)), [(0.5, 0.5)], "<image><point>What colour is it?")


def test_trained_image_budget_is_read_from_the_model(tmp_path):
    import json

    from owl_train.infer import trained_image_budget

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "train_summary.json").write_text(json.dumps(
        {"config": {"min_pixels": 3136, "max_pixels": 12544, "box_format": "qwen", "lr": 0.1}}))
    assert trained_image_budget(tmp_path) == {"min_pixels": 3136, "max_pixels": 12544, "box_format": "qwen"}
    assert trained_image_budget(tmp_path / "model") == trained_image_budget(tmp_path)
    assert trained_image_budget(tmp_path / "nothing") == {}


def test_init_tiny_empty_variant_is_an_error_not_the_default(tmp_path):
    out = one_line_error(runner.invoke(app, ["init-tiny", str(tmp_path / "m"), "--variant", ""]))
    assert "unknown --variant ''" in out and not (tmp_path / "m").exists()


@pytest.mark.parametrize("args, expected", [
    (["init-tiny", "{tmp}/m", "--seed", "-1"], "--seed -1: give a seed of 0 or more"),
    (["init-tiny", "{tmp}/m", "--vocab-from", "{tmp}/absent.txt"], "--vocab-from {tmp}/absent.txt: no such file"),
    (["stage1", "--config", "{tmp}/absent.yaml"], "--config {tmp}/absent.yaml: no such file"),
    (["stage1", "--config", "{tmp}"], "--config {tmp}: is a folder"),
    (["infer", "--model", "{tmp}/m", "--image", "{tmp}/absent.png", "--point", "0.5,0.5"],
     "--image {tmp}/absent.png: no such file"),
])
def test_missing_inputs_are_one_line_naming_the_flag(tmp_path, args, expected):
    res = runner.invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert expected.format(tmp=tmp_path) in one_line_error(res).replace("\n", "")
    assert not (tmp_path / "m").exists()  # nothing written before the refusal


@pytest.mark.parametrize("text, expected", [
    ("{", "not a JSON file"),
    ("[1, 2]", "expected a JSON object"),
    ('{"optimizer": {"type": "Adam"}}', "remove the 'optimizer' section"),
    (b"\xff\xfe", "not a JSON file"),
])
def test_bad_deepspeed_json_fails_before_deepspeed_starts(tmp_path, monkeypatch, text, expected):
    from owl_data.errors import FieldError
    from owl_train.stages import engine
    from owl_train.stages.config import TrainConfig

    ds = tmp_path / "ds.json"
    ds.write_bytes(text if isinstance(text, bytes) else text.encode())
    started = []
    monkeypatch.setattr(engine, "_init_deepspeed_dist", lambda: started.append(1))
    with pytest.raises(FieldError, match=expected) as info:
        engine.place(TrainConfig(deepspeed=str(ds)))
    assert info.value.field == "deepspeed" and str(ds) in str(info.value) and not started
