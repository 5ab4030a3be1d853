"""Metrics: the VQA v2 rule, BLEU/CIDEr through pycocoevalcap, IoU, focus hits."""

from __future__ import annotations

import pytest

from owl_train.evaluate import box_iou, caption_scores, focus_hit, vqa_accuracy, vqa_normalize


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
    assert perfect["tokenizer"].startswith("plain") and perfect["n"] == 2
    assert perfect["bleu4"] > bad["bleu4"] and perfect["cider"] > bad["cider"]


def test_iou_and_focus():
    assert box_iou([0, 0, 1, 1], [0, 0, 1, 1]) == 1.0
    assert box_iou([0, 0, 0.5, 1], [0.5, 0, 1, 1]) == 0.0
    assert box_iou([0, 0, 1, 1], [0, 0, 0.5, 1]) == pytest.approx(0.5)
    assert focus_hit("You are looking at a Car.", "car")
    assert focus_hit("two traffic lights", "traffic_light") and not focus_hit("a carpet", "car")
