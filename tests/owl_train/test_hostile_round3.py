"""Hostile inputs to today's trainer features: ``init-tiny --variant``, the stage-1 ``point_variant``
key, ``infer --corpus --pick``, ``eval --json/--split/--tasks`` and ``benchmarks/point_bench.py``'s
arguments. Bad input is one ``error:`` line (exit 2) before any work, never a traceback; an
explicit ``--set key=null`` is applied, not silently dropped; a null category is no category."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owl_train.cli.app import app
from owl_train.eval.grounding import select_rows
from owl_train.eval.lexicon import load_lexicon, normalize_text
from tests.owl_data.mix.conftest import write_tiny_corpus

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _one_line_error(res) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and res.output.count("error:") == 1, res.output
    return res.output


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A train-only corpus; its 9 point_vqa description rows are all 'car' on 3 images."""
    return write_tiny_corpus(tmp_path / "corpus")


# --- init-tiny --variant -------------------------------------------------------------------


def test_init_tiny_empty_variant_is_an_error_not_the_default(tmp_path):
    out = _one_line_error(runner.invoke(app, ["init-tiny", str(tmp_path / "m"), "--variant", ""]))
    assert "unknown --variant ''" in out and not (tmp_path / "m").exists()


# --- stage 1 point_variant via --set -------------------------------------------------------


class _Done:
    steps, losses, task_counts, dropped, samples_per_s, model_dir = 0, [], {}, {}, 0.0, Path("m")


@pytest.fixture
def captured(monkeypatch):
    import owl_train.stages.stage1 as stage1

    got = []
    monkeypatch.setattr(stage1, "run_stage1", lambda cfg, note=None: got.append(cfg) or _Done())
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
    assert "lr=None" in _one_line_error(res) and not captured


# --- infer --corpus --pick -----------------------------------------------------------------


def _infer(*args):
    return runner.invoke(app, ["infer", "--model", "no-model-needed", *args])


def test_pick_zero_with_a_corpus_says_what_is_wrong(corpus):
    out = _one_line_error(_infer("--corpus", str(corpus), "--pick", "0"))
    assert "--pick 0: give a positive number" in out and "together" not in out


def test_pick_from_a_folder_that_is_not_a_corpus(tmp_path):
    (tmp_path / "notes").mkdir()
    out = _one_line_error(_infer("--corpus", str(tmp_path / "notes"), "--pick", "1"))
    assert "is not an Owl-VL corpus" in out


@pytest.mark.parametrize("split,expect", [("../images", "not a split name"), ("", "not a split name"),
                                          ("val", "its point_vqa splits: train")])
def test_pick_split_errors(corpus, split, expect):
    out = _one_line_error(_infer("--corpus", str(corpus), "--pick", "1", "--split", split))
    assert expect in out


def test_pick_more_categories_than_an_image_has(corpus):
    out = _one_line_error(_infer("--corpus", str(corpus), "--pick", "2", "--split", "train"))
    assert "has 2 annotated categories (at most 1)" in out


# --- eval ----------------------------------------------------------------------------------


def _eval(corpus, *args):
    return runner.invoke(app, ["eval", "--model", "no-model-needed", str(corpus), *args])


def test_eval_json_into_a_missing_folder_fails_before_any_work(corpus, tmp_path):
    out = _one_line_error(_eval(corpus, "--split", "train", "--json", str(tmp_path / "nope" / "e.json")))
    assert "does not exist" in out
    out = _one_line_error(_eval(corpus, "--split", "train", "--json", str(tmp_path)))
    assert "is a folder" in out


@pytest.mark.parametrize("tasks", ["", " , "])
def test_eval_with_no_tasks_is_an_error(corpus, tasks):
    assert "name at least one" in _one_line_error(_eval(corpus, "--split", "train", "--tasks", tasks))


def test_eval_on_a_split_the_corpus_lacks_lists_its_splits(corpus):
    out = _one_line_error(_eval(corpus, "--split", "vall"))
    assert "split 'vall' is not in corpus" in out and "its splits: train" in out


def test_eval_split_that_is_a_path(corpus):
    assert "not a split name" in _one_line_error(_eval(corpus, "--split", "../images"))


def test_eval_config_dedupes_tasks():
    from owl_train.eval.evaluate import EvalConfig

    assert EvalConfig(tasks=("point_vqa", "vqa", "point_vqa")).tasks == ("point_vqa", "vqa")


# --- categories: null, stray hyphens -------------------------------------------------------


def _row(rid, category):
    return {"id": rid, "image_id": "i", "point": (0.5, 0.5), "kind": "description",
            "target": {"category": category, "instance": rid, "bbox": None},
            "conversations": [{"role": "user", "content": "<image><point>What is this?"},
                              {"role": "assistant", "content": "a car"}]}


def test_a_null_category_is_no_category():
    lex = load_lexicon()
    sel = select_rows([_row("a", None), _row("b", "car"), _row("c", "")], lex.with_categories(["None", "car"]))
    assert sel.description == (1,) and sel.excluded_no_category == 2


def test_stray_hyphens_in_a_corpus_category():
    assert normalize_text("car-") == "car" and normalize_text(" -Traffic--light- ") == "traffic light"
    assert normalize_text("-") == ""
    lex = load_lexicon()
    assert lex.with_categories(["car-"]).resolve("car-") == "car"  # was: "['car'] listed more than once"
    junk = lex.with_categories(["-"])
    assert len(junk) == len(lex)  # no category of the blank name " " (whose plural " s" named "it's")
    assert junk.first_category("it's a car") == "car"


# --- benchmarks/point_bench.py arguments ---------------------------------------------------


@pytest.fixture
def bench(monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import point_bench

    def no_work(*a, **k):
        raise AssertionError("point_bench started building for arguments it should refuse")

    monkeypatch.setattr(point_bench, "build_corpus", no_work)
    yield point_bench
    sys.path.remove(str(ROOT / "benchmarks"))


@pytest.mark.parametrize("args,expect", [
    (["--variants", "nope"], "unknown variant"),
    (["--variants", ""], "name at least one variant"),
    (["--variants", " , "], "name at least one variant"),
    (["--size", "bad"], "--size 'bad'"),
    (["--size", "512x256x2"], "--size '512x256x2'"),
    (["--size", "1x1"], "default_scenes.width=1"),
    (["--steps", "0"], "--steps 0"),       # was: silently the default 3000 steps
    (["--steps", "-4"], "--steps -4"),
    (["--train-scenes", "0"], "default_scenes.train=0"),
    (["--lr", "0"], "--lr 0.0"),
    (["--lr", "nan"], "--lr nan"),
    (["--max-pixels", "0"], "--max-pixels 0"),
    (["--workers", "0"], "--workers 0"),
    (["--jobs", "0"], "--jobs 0"),
    (["--eval-limit", "-1"], "--eval-limit -1"),
    (["--crop-pixels", "30"], "foveal_crop_pixels=30"),
    (["--crop-fraction", "2"], "foveal_crop_fraction=2.0"),
])
def test_point_bench_refuses_bad_arguments_before_any_work(bench, tmp_path, capsys, args, expect):
    work = tmp_path / "work"
    assert bench.main([*args, "--work", str(work)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and expect in err, err
    assert not work.exists()


def test_point_bench_work_that_is_a_file(bench, tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("x")
    assert bench.main(["--work", str(f)]) == 2 and "is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["infer", "eval"])
@pytest.mark.parametrize("pixels", ["0", "-5", "783"])
def test_max_pixels_below_one_token_names_the_flag(corpus, command, pixels):
    args = ["--corpus", str(corpus), "--pick", "1"] if command == "infer" else [str(corpus), "--split", "train"]
    out = _one_line_error(runner.invoke(app, [command, "--model", "no-model-needed", *args, "--max-pixels", pixels]))
    assert f"--max-pixels {pixels}: give at least 28*28" in out and "min_pixels" not in out
