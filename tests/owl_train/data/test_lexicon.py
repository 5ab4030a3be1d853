"""owl_train.data.lexicon: which category a text names first, and the shipped lexicon's coverage."""

from __future__ import annotations

import pytest

from owl_train.data.lexicon import Category, Lexicon, load_lexicon, normalize_text
from tests.helpers import COCO_80



@pytest.fixture(scope="module")
def lex() -> Lexicon:
    return load_lexicon()


@pytest.mark.parametrize("text,first", [
    ("This is a red car. It is left of a tree.", "car"),  # the earliest match
    ("A tree, and to its right a car.", "vegetation"),  # tree is Cityscapes vegetation
    ("Two CARS and a person.", "car"),  # plural, case
    ("Three people stand there.", "person"),  # irregular plural
    ("A black sedan.", "car"),  # synonym
    ("Here is a pedestrian in red.", "person"),
    ("A traffic signal over the road.", "traffic light"),
    ("two traffic lights", "traffic light"),  # multi-word plural
    ("a traffic_light", "traffic light"),  # _ reads as a space
    ("a traffic-light", "traffic light"),
    ("It is a stop sign.", "stop sign"),  # longest at the same position
    ("A fire hydrant by the sidewalk.", "fire hydrant"),
    ("an orange car", "car"),  # a form right before another one modifies it
    ("A traffic light pole.", "pole"),
    ("The car's wheel.", "car"),
    ("A carpet.", None),  # whole words only
    ("cartoon scarf", None),
    ("", None),
])
def test_first_category(lex, text, first):
    assert lex.first_category(text) == first


def test_mentions_are_in_order(lex):
    assert [m.category for m in lex.mentions("A sedan next to two trees and the sky.")] == ["car", "vegetation", "sky"]
    m = lex.mentions("see the Traffic  Lights")[0]
    assert (m.start, m.end, m.category) == (8, 23, "traffic light")


def test_resolve_and_names(lex):
    assert lex.resolve("Pedestrian") == "person" and lex.resolve("traffic_light") == "traffic light"
    assert lex.resolve("Traffic element") == "traffic element" and lex.resolve("widget") is None
    assert lex.names("This is a red car.", "car") and not lex.names("A tree beside a car.", "car")
    assert lex.names("A black sedan.", "Vehicle") and lex.names("a green traffic light", "Traffic element")
    assert not lex.names("a vehicle", "car")  # the wider word does not name the narrower category
    assert not lex.names("a car", "") and not lex.names("nothing here", "car")


def test_with_categories_adds_unknown_ones(lex):
    ext = lex.with_categories(["widget", "car", "", "Road cone"])
    assert len(ext) == len(lex) + 2 and ext.first_category("Two road cones and a car.") == "road cone"
    assert ext.resolve("widgets") == "widget" and lex.with_categories(["car"]) is lex


def test_a_form_of_two_categories_is_an_error():
    with pytest.raises(ValueError, match="'bike' is a form of both 'bicycle' and 'motorcycle'"):
        Lexicon([Category("bicycle", "bicycles", ("bike",)), Category("motorcycle", None, ("bike",))])
    with pytest.raises(ValueError, match="not categories"):
        Lexicon([Category("vehicle", includes=("car",))])


def test_the_lexicon_covers_cityscapes_coco_and_drivelm(lex):
    from cityscapesscripts.helpers.labels import labels

    void = {"unlabeled", "rectification border", "out of roi", "static", "dynamic"}
    cityscapes = [lb.name for lb in labels if lb.name not in void]
    drivelm = ["Vehicle", "Pedestrian", "Traffic element"]  # key_object_infos "Category"
    missing = [c for c in cityscapes + list(COCO_80) + drivelm if lex.resolve(c) is None]
    assert not missing and len(set(COCO_80)) == 80
    # each resolves to itself (a corpus category is never read as another one), DriveLM's pedestrian aside
    assert [c for c in cityscapes + list(COCO_80) if lex.resolve(c) != c] == []


def test_every_category_has_a_plural(lex):
    assert all(c.plural for c in lex.categories)


def test_the_generators_categories_resolve(lex):
    from owl_data.generators.reasoning import STREET_CATEGORIES
    from owl_data.generators.templates import _AREA_NP

    assert [c for c in sorted(STREET_CATEGORIES | set(_AREA_NP)) if lex.resolve(c) is None] == []


def test_the_module_example_holds():
    import doctest

    import owl_train.data.lexicon

    assert doctest.testmod(owl_train.data.lexicon).failed == 0


def test_stray_hyphens_in_a_corpus_category():
    assert normalize_text("car-") == "car" and normalize_text(" -Traffic--light- ") == "traffic light"
    assert normalize_text("-") == ""
    lex = load_lexicon()
    assert lex.with_categories(["car-"]).resolve("car-") == "car"  # was: "['car'] listed more than once"
    junk = lex.with_categories(["-"])
    assert len(junk) == len(lex)  # no category of the blank name " " (whose plural " s" named "it's")
    assert junk.first_category("it's a car") == "car"
