"""owl_train.eval.grounding: the hit rate and its controls, on stand-in models with known behaviour.

The fixture: 32x32 images of flat colour regions, targets at known points, rows built by hand.

    img_a, img_c  left half red (a car), right half green (a tree: vegetation)   <- evaluated
    img_b         left green, right red (the layout inverted)                      <- pool only
    img_d         left blue (a person), right red                                  <- pool only

Coordinates are multiples of 1/64 so that distances (and their ties) are exact in floating point.
Two stand-in models: LAYOUT answers from (x, y) alone ("a car" left of x = 0.5, "a tree" right of
it); PIXEL answers from the colour under the point. Every expected value below is worked by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from owl_data.corpus.layout_prior import fit_layout_prior
from owl_train.eval.grounding import (SWAP_RADIUS, blank_image, grounding_eval, image_swap_pairs, point_swap_pairs,
                                      question_text, select_rows)
from owl_train.data.lexicon import load_lexicon

RED, GREEN, BLUE = (200, 0, 0), (0, 160, 0), (0, 0, 200)
W = H = 32


def _image(left, right):
    a = np.zeros((H, W, 3), dtype=np.uint8)
    a[:, : W // 2] = left
    a[:, W // 2:] = right
    return Image.fromarray(a)


IMAGES = {"img_a": _image(RED, GREEN), "img_b": _image(GREEN, RED), "img_c": _image(RED, GREEN),
          "img_d": _image(BLUE, RED)}


def _row(rid, image_id, x, y, category, question="What is this?", kind="description"):
    return {"id": rid, "image_id": image_id, "image": IMAGES[image_id], "point": (x, y), "kind": kind,
            "target": {"category": category, "instance": rid, "bbox": [0.0, 0.0, 1.0, 1.0]},
            "conversations": [{"role": "user", "content": f"<image><point>{question}"},
                              {"role": "assistant", "content": "..."}]}


EVALUATED = [
    _row("a1", "img_a", 0.25, 0.5, "car"),
    _row("a2", "img_a", 0.75, 0.5, "vegetation", question=""),
    _row("a3", "img_a", 0.2, 0.4, "car", question="What colour is this car?"),  # names a category: out
    _row("c1", "img_c", 0.3125, 0.625, "car", question="Describe the object at the point."),
    _row("c2", "img_c", 0.6875, 0.1875, "vegetation"),
    _row("r1", "img_a", 0.25, 0.5, "car", question="Is it on the road or on the sidewalk?", kind="reasoning"),  # out
    _row("r2", "img_c", 0.6875, 0.1875, "vegetation", question="Is it tall?", kind="reasoning"),
    _row("n1", "img_c", 0.5, 0.9, ""),  # no category: out
]
POOL_ONLY = [
    _row("b1", "img_b", 0.265625, 0.515625, "vegetation"),  # a1 + (1/64, 1/64)
    _row("b2", "img_b", 0.75, 0.5, "car"),
    _row("b3", "img_b", 0.3125, 0.671875, "vegetation"),  # c1 + (0, 3/64): beyond 1/32
    _row("c3", "img_c", 0.25, 0.5, "car"),  # at a1's point, but a1's category
    _row("d1", "img_d", 0.234375, 0.484375, "person"),  # a1 - (1/64, 1/64): ties with b1
    _row("d2", "img_d", 0.34375, 0.625, "person"),  # c1 + (1/32, 0): on the radius, kept
]


def _as_stored(r):
    """The pool as read from the corpus: no image, the point a {x, y} struct."""
    return {**{k: v for k, v in r.items() if k != "image"}, "point": {"x": r["point"][0], "y": r["point"][1]}}


POOL = [_as_stored(r) for r in EVALUATED + POOL_ONLY if r["kind"] == "description"]
TRAIN = [_as_stored(_row(f"t{i}", "img_a", x, y, c)) for i, (x, y, c) in enumerate([
    (0.2, 0.5, "car"), (0.3, 0.5, "car"), (0.25, 0.3, "car"), (0.7, 0.5, "vegetation"), (0.8, 0.5, "vegetation"),
    (0.7, 0.2, "person"), (0.65, 0.15, "person")])]


def layout_model(rows):
    return ["a car" if r["point"][0] < 0.5 else "a tree" for r in rows]


def pixel_model(rows):
    words = {RED: "This is a red car.", GREEN: "A tree.", BLUE: "You are looking at a person."}
    out = []
    for r in rows:
        im = r["image"]
        px = min(int(r["point"][0] * im.width), im.width - 1)
        py = min(int(r["point"][1] * im.height), im.height - 1)
        out.append(words.get(im.getpixel((px, py)), "I cannot tell."))
    return out


def question_copier(rows):
    """Names whatever the question names, else nothing: it never looks."""
    return [question_text(r) or "no idea" for r in rows]


def _run(model, **kw):
    asked = []

    def images(ids):
        asked.append(sorted(ids))
        return {i: IMAGES[i] for i in ids}

    rep = grounding_eval(EVALUATED, model, pool=POOL, lexicon=load_lexicon(), prior=fit_layout_prior(TRAIN, k=3),
                         images=images, **kw)
    return rep.metrics(), asked


def test_selection_leaves_out_rows_whose_question_names_a_category():
    sel = select_rows(EVALUATED, load_lexicon())
    assert [EVALUATED[i]["id"] for i in sel.description] == ["a1", "a2", "c1", "c2"]
    assert [EVALUATED[i]["id"] for i in sel.reasoning] == ["r2"]
    assert (sel.excluded_question_names_category, sel.excluded_no_category) == (2, 1)  # a3, r1; n1


def test_pairs_follow_the_rules():
    lex = load_lexicon()
    rows = [EVALUATED[i] for i in select_rows(EVALUATED, lex).description]
    # same image, nearest target of another category: a2 -> a1 (d^2 0.25) not a3 (0.3125); c2 -> c3
    # (0.2890625) not c1 (0.33203125)
    assert [(r["id"], p["id"]) for r, p in point_swap_pairs(rows, POOL, lex)] == [
        ("a1", "a2"), ("a2", "a1"), ("c1", "c2"), ("c2", "c3")]
    # another image, within 1/32 per axis, another category: a1 -> b1 (ties d1 at 2/4096: img_b < img_d;
    # c3 sits at distance 0 but is a car like a1), a2 -> b2, c1 -> d2 (|dx| = 1/32 exactly; b3 is 3/64
    # away in y), c2: none
    assert [(r["id"], p["id"]) for r, p in image_swap_pairs(rows, POOL, lex)] == [
        ("a1", "b1"), ("a2", "b2"), ("c1", "d2")]
    assert SWAP_RADIUS == 1 / 32


def test_point_swap_ties_go_to_the_lower_point():
    lex = load_lexicon()
    row = _row("x", "img_a", 0.5, 0.5, "car")
    left, right = _row("l", "img_a", 0.25, 0.5, "person"), _row("r", "img_a", 0.75, 0.5, "person")
    assert point_swap_pairs([row], [right, left], lex)[0][1]["id"] == "l"


def test_image_swap_never_stays_on_the_same_image():
    lex = load_lexicon()
    row = _row("x", "img_a", 0.5, 0.5, "car")
    same = _row("s", "img_a", 0.5, 0.5, "person")
    other = _row("o", "img_b", 0.5 + 1 / 32, 0.5 - 1 / 32, "person")
    assert [p["id"] for _, p in image_swap_pairs([row], [same], lex)] == []
    assert [p["id"] for _, p in image_swap_pairs([row], [same, other], lex)] == ["o"]


def test_another_category_excludes_kinds_of_it():
    lex = load_lexicon()
    row = _row("x", "img_a", 0.5, 0.5, "car")
    vehicle = _row("v", "img_b", 0.5, 0.5, "Vehicle")  # a car is a vehicle: an answer "car" names both
    assert image_swap_pairs([row], [vehicle], lex) == []
    assert point_swap_pairs([row], [{**vehicle, "image_id": "img_a"}], lex) == []


def test_blank_image_is_the_mean_colour():
    b = blank_image(IMAGES["img_a"])
    assert b.size == (W, H) and (np.asarray(b) == (100, 80, 0)).all()


def test_layout_model():
    m, asked = _run(layout_model)
    # right on every evaluated row: the evaluated images follow its layout
    assert (m["hit"], m["hit_n"]) == (1.0, 4)
    assert (m["reasoning_hit"], m["reasoning_hit_n"]) == (1.0, 1)
    # moving the point within a layout image: it still follows its rule (x: .75, .25, .6875, .25)
    assert (m["point_swap"], m["point_swap_n"]) == (1.0, 4)
    # on another image at the same place it answers as before, never the other category
    assert (m["image_swap"], m["image_swap_n"], m["image_swap_pairs"]) == (0.0, 3, 3)
    # with no image it gives the same answers: blank = hit
    assert (m["blank"], m["blank_n"]) == (1.0, 4)
    # the 3-NN prior: a1 car, a2 vegetation, c1 car, c2 person (t5, t6 nearest): it agrees on 3 of 4
    assert (m["blank_layout_prior"], m["blank_layout_prior_n"]) == (0.75, 4)
    assert asked == [["img_b", "img_d"]]  # only the partners' images are fetched


def test_pixel_model():
    m, _ = _run(pixel_model)
    assert (m["hit"], m["hit_n"]) == (1.0, 4)
    assert (m["point_swap"], m["point_swap_n"]) == (1.0, 4)
    assert (m["image_swap"], m["image_swap_n"]) == (1.0, 3)  # vegetation on img_b, car on img_b, person on img_d
    assert (m["blank"], m["blank_n"]) == (0.0, 4)  # (100, 80, 0) is no colour it knows
    assert (m["blank_layout_prior"], m["blank_layout_prior_n"]) == (0.0, 4)


def test_model_independent_figures():
    m, _ = _run(pixel_model)
    # prior right on a1, a2, c1; wrong on c2 (person); majority class car (3 of 7 train points): a1, c1
    assert (m["layout_prior"], m["layout_prior_n"], m["layout_prior_fit_points"]) == (0.75, 4, 7)
    assert (m["majority_baseline"], m["majority_baseline_n"]) == (0.5, 4)
    assert (m["excluded_question_names_category"], m["excluded_no_category"]) == (2, 1)


def test_a_model_that_copies_the_question_scores_nothing():
    m, _ = _run(question_copier)
    assert (m["hit"], m["hit_n"], m["reasoning_hit"]) == (0.0, 4, 0.0)  # a3 would have been a hit


def test_no_controls_and_no_prior():
    lex = load_lexicon()
    calls = []

    def model(rows):
        calls.append(len(rows))
        return layout_model(rows)

    rep = grounding_eval(EVALUATED, model, pool=POOL, lexicon=lex, prior=None, images=lambda ids: {},
                         controls=False)
    m = rep.metrics()
    assert calls == [len(EVALUATED)] and m["controls"] is False
    for k in ("point_swap", "image_swap", "blank", "blank_layout_prior", "layout_prior", "majority_baseline"):
        assert (m[k], m[f"{k}_n"]) == (None, 0)
    assert m["hit"] == 1.0


def test_unanswered_rows_are_not_counted():
    def some(rows):
        return [None if r["id"] == "a1" else a for r, a in zip(rows, layout_model(rows))]

    m, _ = _run(some)
    assert (m["hit"], m["hit_n"], m["layout_prior_n"]) == (1.0, 3, 3)
    assert m["point_swap_n"] == 3 and m["blank_n"] == 3  # the probes of a1 keep its id


def test_missing_partner_image_is_an_error():
    with pytest.raises(ValueError, match="image-swap partner"):
        grounding_eval(EVALUATED, layout_model, pool=POOL, lexicon=load_lexicon(), prior=None,
                       images=lambda ids: {})


def _lex_row(rid, category):
    return {"id": rid, "image_id": "i", "point": (0.5, 0.5), "kind": "description",
            "target": {"category": category, "instance": rid, "bbox": None},
            "conversations": [{"role": "user", "content": "<image><point>What is this?"},
                              {"role": "assistant", "content": "a car"}]}


def test_a_null_category_is_no_category():
    lex = load_lexicon()
    sel = select_rows([_lex_row("a", None), _lex_row("b", "car"), _lex_row("c", "")], lex.with_categories(["None", "car"]))
    assert sel.description == (1,) and sel.excluded_no_category == 2
