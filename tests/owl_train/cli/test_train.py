"""The stage, infer and eval commands (owl_train.cli.train): ``--set`` against the YAML, and bad
``infer --pick`` / ``eval`` arguments are one ``error:`` line (exit 2) before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from owl_train.cli.app import app
from tests.helpers import one_line_error
from tests.owl_data.mix.conftest import write_tiny_corpus

ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()

@pytest.fixture
def corpus(tmp_path) -> Path:
    """A train-only corpus; its 9 point_vqa description rows are all 'car' on 3 images."""
    return write_tiny_corpus(tmp_path / "corpus")


class _Done:
    steps, losses, task_counts, dropped, samples_per_s, model_dir = 0, [], {}, {}, 0.0, Path("m")


@pytest.fixture
def captured(monkeypatch):
    import owl_train.stages.stage1 as stage1

    got = []
    monkeypatch.setattr(stage1, "run_stage1", lambda cfg, note=None, progress=None: got.append(cfg) or _Done())
    return got


@pytest.mark.parametrize("value", ["null", "~", ""])
def test_set_point_variant_null_clears_the_yaml_preset(captured, value):
    res = runner.invoke(app, ["stage1", "--config", str(ROOT / "pipelines" / "stage1.yaml"), "--model", "m",
                              "--corpus", "c", "--mix", "x", "--set", f"point_variant={value}"])
    assert res.exit_code == 0, res.output
    assert captured[0].point_variant is None  # was silently 'cde' from the YAML


def test_flags_still_win_over_set_and_set_over_the_yaml(captured):
    res = runner.invoke(app, ["stage1", "--config", str(ROOT / "pipelines" / "stage1.yaml"), "--model", "m",
                              "--corpus", "c", "--mix", "x", "--max-steps", "3", "--set", "max_steps=9",
                              "--set", "point_variant=cd"])
    assert res.exit_code == 0, res.output
    assert captured[0].max_steps == 3 and captured[0].point_variant == "cd"


def test_set_null_on_a_required_field_is_a_one_line_error(captured):
    res = runner.invoke(app, ["stage1", "--config", str(ROOT / "pipelines" / "stage1.yaml"), "--model", "m",
                              "--corpus", "c", "--mix", "x", "--set", "lr=null"])
    assert "lr=None" in one_line_error(res) and not captured


def _infer(*args):
    return runner.invoke(app, ["infer", "--model", "no-model-needed", *args])


def test_pick_zero_with_a_corpus_says_what_is_wrong(corpus):
    out = one_line_error(_infer("--corpus", str(corpus), "--pick", "0"))
    assert "--pick 0: give a positive number" in out and "together" not in out


def test_pick_from_a_folder_that_is_not_a_corpus(tmp_path):
    (tmp_path / "notes").mkdir()
    out = one_line_error(_infer("--corpus", str(tmp_path / "notes"), "--pick", "1"))
    assert "is not an Owl-VL corpus" in out


@pytest.mark.parametrize("split,expect", [("../images", "not a split name"), ("", "not a split name"),
                                          ("val", "its point_vqa splits: train")])
def test_pick_split_errors(corpus, split, expect):
    out = one_line_error(_infer("--corpus", str(corpus), "--pick", "1", "--split", split))
    assert expect in out


def test_pick_more_categories_than_an_image_has(corpus):
    out = one_line_error(_infer("--corpus", str(corpus), "--pick", "2", "--split", "train"))
    assert "has 2 annotated categories (at most 1)" in out


def _eval(corpus, *args):
    return runner.invoke(app, ["eval", "--model", "no-model-needed", str(corpus), *args])


def test_eval_json_into_a_missing_folder_fails_before_any_work(corpus, tmp_path):
    out = one_line_error(_eval(corpus, "--split", "train", "--json", str(tmp_path / "nope" / "e.json")))
    assert "does not exist" in out
    out = one_line_error(_eval(corpus, "--split", "train", "--json", str(tmp_path)))
    assert "is a folder" in out


@pytest.mark.parametrize("tasks", ["", " , "])
def test_eval_with_no_tasks_is_an_error(corpus, tasks):
    assert "name at least one" in one_line_error(_eval(corpus, "--split", "train", "--tasks", tasks))


def test_eval_on_a_split_the_corpus_lacks_lists_its_splits(corpus):
    out = one_line_error(_eval(corpus, "--split", "vall"))
    assert "split 'vall' is not in corpus" in out and "its splits: train" in out


def test_eval_split_that_is_a_path(corpus):
    assert "not a split name" in one_line_error(_eval(corpus, "--split", "../images"))


@pytest.mark.parametrize("command", ["infer", "eval"])
@pytest.mark.parametrize("pixels", ["0", "-5", "783"])
def test_max_pixels_below_one_token_names_the_flag(corpus, command, pixels):
    args = ["--corpus", str(corpus), "--pick", "1"] if command == "infer" else [str(corpus), "--split", "train"]
    out = one_line_error(runner.invoke(app, [command, "--model", "no-model-needed", *args, "--max-pixels", pixels]))
    assert f"--max-pixels {pixels}: give at least 28*28" in out and "min_pixels" not in out
