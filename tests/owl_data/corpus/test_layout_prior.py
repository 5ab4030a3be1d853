"""owl_data.corpus.layout_prior: the (x, y) -> category k-NN vote, pinned on hand-worked examples."""

from __future__ import annotations

import numpy as np
import pytest

from owl_data.corpus.layout_prior import (LayoutPrior, description_pairs, fit_layout_prior, knn_vote,
                                          read_description_rows)
from tests.owl_data.mix.conftest import write_tiny_corpus

# the worked example of knn_vote's docstring
TRAIN = np.array([(0.0, 0.5), (1.0, 0.5), (0.5, 0.0), (0.5, 1.0)])
LABELS = np.array([2, 0, 1, 1])


@pytest.mark.parametrize("query,k,label", [
    ((0.5, 0.5), 1, 2),  # four points at distance 0.5: the lowest index
    ((0.5, 0.5), 2, 0),  # labels {2, 0}: a vote tie goes to the lowest class
    ((0.5, 0.5), 3, 0),  # {2, 0, 1}: a three-way tie
    ((0.5, 0.5), 4, 1),  # {2, 0, 1, 1}
    ((0.0, 0.5), 2, 1),  # index 0, then (.5, 0) and (.5, 1) tie: index 2 -> {2, 1}: tie -> 1
    ((0.0, 0.5), 99, 1),  # k above N uses all N
])
def test_knn_vote_worked_example(query, k, label):
    assert knn_vote(TRAIN, LABELS, np.array([query]), k).tolist() == [label]


def test_knn_vote_chunks_agree():
    rng = np.random.default_rng(0)
    xy, lab, q = rng.random((50, 2)), rng.integers(0, 4, 50), rng.random((37, 2))
    assert (knn_vote(xy, lab, q, 5, chunk=4) == knn_vote(xy, lab, q, 5)).all()


@pytest.mark.parametrize("args,msg", [
    ((np.zeros((0, 2)), np.zeros(0), np.zeros((1, 2))), "at least one"),
    ((TRAIN, LABELS[:3], np.zeros((1, 2))), "train_labels"),
    ((TRAIN, LABELS, np.zeros((1, 3))), r"\(N, 2\)"),
    ((TRAIN, -LABELS, np.zeros((1, 2))), ">= 0"),
])
def test_knn_vote_errors(args, msg):
    with pytest.raises(ValueError, match=msg):
        knn_vote(*args)
    with pytest.raises(ValueError, match="k=0"):
        knn_vote(TRAIN, LABELS, np.zeros((1, 2)), 0)


def _row(image, x, y, cat, kind="description", struct=True):
    return {"image_id": image, "kind": kind, "target": {"category": cat},
            "point": {"x": x, "y": y} if struct else (x, y)}


def test_description_pairs_are_distinct_and_sorted():
    rows = [_row("b", 0.5, 0.5, "car"), _row("a", 0.9, 0.1, "sky"), _row("a", 0.9, 0.1, "sky", struct=False),
            _row("a", 0.2, 0.2, "pole", kind="reasoning"), _row("a", 0.3, 0.3, "")]
    xy, cats = description_pairs(rows)
    assert xy.tolist() == [[0.9, 0.1], [0.5, 0.5]] and cats == ["sky", "car"]


def test_layout_prior_names_and_majority():
    # classes sorted: car=0, road=1, sky=2; k=3 at (.5, .2): sky, sky, road -> sky
    prior = LayoutPrior([(0.5, 0.1), (0.4, 0.1), (0.5, 0.9), (0.6, 0.9), (0.5, 0.5)],
                        ["sky", "sky", "road", "road", "car"], k=3)
    assert prior.categories == ["car", "road", "sky"] and prior.n == 5
    assert prior.predict([(0.5, 0.2), (0.5, 0.8)]) == ["sky", "road"] and prior.predict([]) == []
    assert prior.accuracy([(0.5, 0.2), (0.5, 0.8)], ["sky", "car"]) == 0.5 and prior.accuracy([], []) is None
    assert prior.majority == "road"  # road and sky tie at 2: the lower index
    assert prior.majority_accuracy(["road", "sky", "road", "car"]) == 0.5


def test_fit_needs_description_rows():
    with pytest.raises(ValueError, match="no point_vqa description rows"):
        fit_layout_prior([_row("a", 0.5, 0.5, "car", kind="reasoning")])
    assert fit_layout_prior([_row("a", 0.5, 0.5, "car")]).k == 15


def test_layout_prior_skips_null_categories_as_it_skips_empty_ones(tmp_path):
    rows = [
        {"kind": "description", "image_id": "i", "point": {"x": 0.1, "y": 0.1}, "target": {"category": None}},
        {"kind": "description", "image_id": "i", "point": {"x": 0.2, "y": 0.2}, "target": {"category": ""}},
        {"kind": "description", "image_id": "i", "point": {"x": 0.3, "y": 0.3}, "target": {"category": "car"}},
    ]
    xy, cats = description_pairs(rows)
    assert cats == ["car"] and xy.tolist() == [[0.3, 0.3]]  # not a category called "None"


def test_description_rows_refuse_a_split_that_is_a_path(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "c")
    with pytest.raises(ValueError, match="not a split name"):
        read_description_rows(corpus, "../images")
