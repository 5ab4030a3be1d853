"""owl_train.eval.evaluate: the VQA v2 rule, BLEU/CIDEr through pycocoevalcap, IoU, and a real
``owl-train eval --json`` of an untrained tiny model on the drawn corpus (the grounding figures'
values are pinned on stand-in models in test_grounding.py)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from owl_train.cli.app import app
from owl_train.eval.metrics import box_iou, caption_scores, vqa_accuracy, vqa_normalize


def test_vqa_normalisation_follows_the_official_rules():
    assert vqa_normalize("Two.") == "2"
    assert vqa_normalize("The dog") == "dog"
    assert vqa_normalize("dont") == "don't"
    assert vqa_normalize("yes!") == "yes"
    assert vqa_normalize("1,000") == "1000"


@pytest.mark.parametrize("pred,answers,acc", [
    ("two", ["2"] * 10, 1.0),
    ("4", ["4"] * 7 + ["four"] * 2 + ["5"], 1.0),
    ("5", ["4"] * 7 + ["four"] * 2 + ["5"], 0.3),  # 9 subsets keep the one "5" (1/3), 1 drops it (0)
    ("yes", ["yes"] * 2 + ["no"] * 8, 0.6),  # 2 subsets leave a yes out (1/3), 8 keep both (2/3)
    ("cat", ["dog"] * 10, 0.0),
])
def test_vqa_accuracy_leave_one_out(pred, answers, acc):
    assert vqa_accuracy(pred, answers) == pytest.approx(acc)


def test_caption_scores_plain_tokenizer():
    refs = {"a": ["a red car on the road", "a car that is red"], "b": ["two people walk"]}
    perfect = caption_scores(refs, {"a": "a red car on the road", "b": "two people walk"}, use_java=False)
    bad = caption_scores(refs, {"a": "sky", "b": "blue sky"}, use_java=False)
    assert perfect.tokenizer.startswith("plain") and perfect.n == 2
    assert perfect.bleu4 > bad.bleu4 and perfect.cider > bad.cider


def test_iou():
    assert box_iou([0, 0, 1, 1], [0, 0, 1, 1]) == 1.0
    assert box_iou([0, 0, 0.5, 1], [0.5, 0, 1, 1]) == 0.0
    assert box_iou([0, 0, 1, 1], [0, 0, 0.5, 1]) == pytest.approx(0.5)


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    from owl_data.build.driver import SourceSpec, run_build
    from owl_data.build.config import BuildConfig
    from owl_data.sources.synthetic.scenes import write_default_sources
    from owl_train.model.tiny import init_tiny

    root = tmp_path_factory.mktemp("owl_eval")
    sources = write_default_sources(root / "scenes")
    run_build([SourceSpec(n, s, synthetic=True) for n, s in sources], root / "corpus", BuildConfig())
    init_tiny(root / "tiny")
    return root


GROUNDING_RATES = ("hit", "reasoning_hit", "layout_prior", "majority_baseline", "point_swap", "image_swap", "blank",
                   "blank_layout_prior")


def _eval(root, out, *extra):
    res = CliRunner().invoke(app, ["eval", "--model", str(root / "tiny"), str(root / "corpus"), "--tasks", "point_vqa",
                                   "--limit", "12", "--max-new-tokens", "2", "--max-pixels", "3136", "--json",
                                   str(out), *extra])
    assert res.exit_code == 0, res.output
    return res, json.loads(out.read_text())["metrics"]["point_vqa"]


def test_eval_json_holds_the_grounding_figures_and_controls(tiny_world, tmp_path):
    res, m = _eval(tiny_world, tmp_path / "r.json")
    for k in GROUNDING_RATES:
        assert m[f"{k}_n"] >= 0 and (m[k] is None) == (m[f"{k}_n"] == 0), k
        assert m[k] is None or 0 <= m[k] <= 1, k
    assert m["controls"] is True and m["layout_prior_fit_points"] > 0
    # 12 rows: each description row either counts or names a category in its question
    assert m["hit_n"] + m["reasoning_hit_n"] + m["excluded_question_names_category"] + m["excluded_no_category"] \
        == m["answered"] == 12
    assert m["hit_n"] > 0 and m["layout_prior_n"] == m["hit_n"] == m["blank_n"]
    assert m["image_swap_n"] <= m["image_swap_pairs"] and "point_swap" in res.stdout and "layout_prior" in res.stdout


def test_eval_without_controls(tiny_world, tmp_path):
    _, m = _eval(tiny_world, tmp_path / "r.json", "--no-controls")
    assert m["controls"] is False and m["hit_n"] > 0 and m["layout_prior"] is not None
    assert (m["point_swap"], m["point_swap_n"], m["image_swap_n"], m["blank_n"]) == (None, 0, 0, 0)


def test_eval_config_dedupes_tasks():
    from owl_train.eval.evaluate import EvalConfig

    assert EvalConfig(tasks=("point_vqa", "vqa", "point_vqa")).tasks == ("point_vqa", "vqa")


def test_cider_on_templated_or_few_references_is_flagged_not_read_as_a_failure():
    from owl_train.eval.metrics import CIDER_DEGENERATE, cider_note

    # hand-worked: every image has the same reference, so every n-gram's document frequency is
    # the number of images, its idf log(N / N) = 0, and even a perfect answer scores 0
    same = {k: ["a street with two cars and a tree"] for k in "abc"}
    s = caption_scores(same, {k: v[0] for k, v in same.items()}, use_java=False)
    assert s.cider == 0.0 and s.cider_ceiling == 0.0 and s.bleu4 > 0.99
    note = cider_note("caption", s)
    assert note and "CIDEr cannot rank answers here" in note and "0.00 over these 3 references" in note
    # varied references: the ceiling is near CIDEr's 10 for a perfect match (x10 scaling; "a" is in two
    # of the three references, so its weight is lower) and there is no note
    varied = {"a": ["a red car on the road"], "b": ["two people walk"], "c": ["a bus near a pole"]}
    s = caption_scores(varied, {"a": "sky", "b": "sky", "c": "sky"}, use_java=False)
    assert 9.0 < s.cider_ceiling <= 10.0 and s.cider_ceiling > CIDER_DEGENERATE and cider_note("caption", s) is None
    # one image: idf is log(1/1) = 0 whatever the text
    one = caption_scores({"a": ["a red car"]}, {"a": "a red car"}, use_java=False)
    assert one.cider_ceiling == 0.0 and cider_note("caption", one)


def test_eval_of_an_untrained_model_says_why_grounding_and_cider_are_zero(tiny_world, tmp_path):
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["eval", "--model", str(tiny_world / "tiny"), str(tiny_world / "corpus"),
                                   "--tasks", "grounding,caption", "--limit", "4", "--max-new-tokens", "2",
                                   "--max-pixels", "3136", "--json", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["metrics"]["grounding"]["acc@0.5"] == 0.0
    assert any(n.startswith("grounding: acc@0.5 is 0: 0 of 4 answers hold a box in the qwen format; the model has "
                            "not learnt to answer with boxes") for n in rep["notes"]), rep["notes"]
    cap = rep["metrics"]["caption"]
    flagged = any(n.startswith("caption: CIDEr cannot rank answers here") for n in rep["notes"])
    assert flagged == (cap["cider_ceiling"] < 0.5), (cap, rep["notes"])
