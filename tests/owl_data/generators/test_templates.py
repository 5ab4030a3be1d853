"""Description templates and the fact functions they use, on a hand-built street scene.

The scene (H=100, W=200): building (label 11) above row 55, a sidewalk band (8) on rows
55..69, a road band (7) from row 70 down; a red car (rows 50..79, cols 20..59) on the road
on the left, a blue car (rows 52..81, cols 140..179) on the road on the right, a person
in yellow (rows 35..61, cols 95..102) on the sidewalk, and the road as a stuff region.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from owl_data.generators import (
    GENERATOR_VERSION,
    REASONING_FAMILIES,
    GeneratedQA,
    GeneratorConfig,
    generate,
)
from owl_data.generators import scene_facts as sf
from owl_data.generators import templates
from owl_data.ingest.geometry import ResolvedInstance, ResolvedScene, mask_bbox
from owl_data.records import Instance
from tests.owl_data.generators.toy_street import BLUE, H, RED, W, YELLOW, street

FLOAT = re.compile(r"\d\.\d|\d+\s*(px|pixels?)\b|[\[(]\s*\d")




@pytest.fixture
def scene():
    return street()


# --- colour, size, position ------------------------------------------------------------


@pytest.mark.parametrize("rgb,name", [
    (RED, "red"), (BLUE, "blue"), (YELLOW, "yellow"), ((128, 128, 128), "gray"),
    ((170, 160, 150), "gray"), ((250, 250, 250), "white"), ((20, 20, 20), "black"),
    ((30, 160, 40), "green"), ((230, 120, 20), "orange"), ((110, 60, 30), "brown"),
    ((140, 40, 200), "purple"), ((230, 80, 170), "pink"),
])
def test_rgb_colour_name_palette(rgb, name):
    assert sf.rgb_colour_name(rgb) == name


def test_colour_under_masks(scene):
    red, blue, person, road = scene.instances
    assert sf.colour_of(scene, red) == "red"
    assert sf.colour_of(scene, blue) == "blue"
    assert sf.colour_of(scene, person) == "yellow"
    assert sf.colour_of(scene, road) == "gray"


def test_colour_of_box_only_reads_the_central_half():
    px = np.zeros((H, W, 3), np.uint8)
    px[:] = (128, 128, 128)
    px[40:60, 80:120] = (30, 160, 40)  # green core; the box's outer quarter stays gray
    box = ResolvedInstance(Instance("b", "car"), None, (70 / W, 30 / H, 130 / W, 70 / H), None, 0.12)
    assert sf.colour_of(ResolvedScene(px, W, H, [box]), box) == "green"


def test_size_and_frame_position(scene):
    red, blue, person, _ = scene.instances
    assert red.area == 1200 / 20000 and sf.size_class(red.area) == "small"  # 6% of the frame
    assert person.area == 216 / 20000 and sf.size_class(person.area) == "small"  # 1.08%
    assert sf.frame_position(red.bbox) == ("left", "middle")  # centre (40, 65)
    assert sf.frame_position(blue.bbox) == ("right", "bottom")  # centre (160, 67)
    assert sf.frame_position(person.bbox) == ("centre", "middle")


@pytest.mark.parametrize("area,word", [
    # the thresholds of scene_facts' docstring: 1%, 10%, 30% of the frame, lower bound inclusive
    (0.0, None), (-0.1, None), (float("nan"), None), (1e-6, "tiny"), (0.0099, "tiny"), (0.01, "small"),
    (0.0999, "small"), (0.10, "sizeable"), (0.2999, "sizeable"), (0.30, "large"), (1.0, "large"),
])
def test_size_class_thresholds(area, word):
    assert sf.size_class(area) == word
    assert (sf.TINY_SHARE, sf.SMALL_SHARE, sf.LARGE_SHARE) == (0.01, 0.10, 0.30)


@pytest.mark.parametrize("rows,cols,share", [
    ((50, 52), (0, 10), "a tiny part"),      # 2 x 10 = 20 px = 0.1% of 200 x 100
    ((30, 90), (0, 40), "a sizeable part"),  # 60 x 40 = 2400 px = 12%
    ((0, 100), (0, 70), "a large part"),     # 100 x 70 = 7000 px = 35%
])
def test_description_says_the_share_of_the_view(rows, cols, share):
    """A bus painted over the toy street: the description states the share it takes of the view,
    worked by hand from its pixels, and never an absolute size."""
    s = street(extra=[("28001", "bus", rows, cols, (30, 160, 40), 28)])
    bus = next(i for i in s.instances if i.instance == "28001")
    assert bus.area == pytest.approx((rows[1] - rows[0]) * (cols[1] - cols[0]) / (H * W))
    for seed in range(6):
        for text in _answers(generate(s, bus, ((cols[0] + 0.5) / W, (rows[0] + 0.5) / H), seed=seed)):
            assert f"takes up {share} of the view" in text or f"taking up {share} of the view" in text, text
            assert not re.search(r"\b(small|medium-sized|medium|large|big|tiny) (bus|car|person)\b", text), text
            assert not re.search(r"\bis (small|medium-sized|large)\b|appears (small|medium|large)", text), text


def test_two_wide_areas_of_one_category_are_told_apart():
    s = street()
    sem = s.semantic
    for iid, rows in (("8:0", slice(55, 62)), ("8:1", slice(62, 70))):
        m = np.zeros((H, W), bool)
        m[rows, :] = True
        m &= sem == 8
        s.instances.append(ResolvedInstance(Instance(iid, "sidewalk", "stuff"), m, mask_bbox(m), None, m.mean()))
    a, b = s.instances[-2:]
    ta = _answers(generate(s, a, (0.5, 0.58), seed=0))
    tb = _answers(generate(s, b, (0.5, 0.66), seed=0))
    assert not set(ta) & set(tb)
    # same category, colour, size and place: only the rank tells them apart
    assert all("of the two sidewalk areas in view" in t for t in ta + tb)


def test_gap_matches_neighbours(scene):
    red, blue, person, _ = scene.instances
    assert sf.gap(scene, red, person) == pytest.approx(35 / np.hypot(W, H))
    assert sf.nearest_neighbour(scene, red).gap == pytest.approx(sf.gap(scene, red, person))


def test_nearest_neighbour_and_relation(scene):
    red, blue, person, _ = scene.instances
    nb = sf.nearest_neighbour(scene, red)  # person gap 35 px < blue car gap 80 px
    assert nb.instance is person and nb.relation == "left of"
    assert sf.nearest_neighbour(scene, blue).instance is person
    nb = sf.nearest_neighbour(scene, person)  # red car 35 px < blue car 37 px
    assert nb.instance is red and nb.relation == "right of"


# --- descriptions ----------------------------------------------------------------------


def _answers(rows):
    return [r.answer for r in rows if r.kind == "description"]


def test_description_states_computed_facts(scene):
    red, blue, person, road = scene.instances
    for seed in range(5):
        rows = generate(scene, red, (0.2, 0.65), seed=seed)
        desc = [r for r in rows if r.kind == "description"]
        assert [r.question is None for r in desc] == [False, True]
        assert all(r.generator == f"{GENERATOR_VERSION}/description" for r in desc)
        for text in _answers(rows):
            assert "a red car" in text
            assert "a small part of the view" in text and "on the left of the view" in text
            assert "to the left of" in text and "a person in yellow" in text
            assert "on the road" in text and "sidewalk" not in text
        for text in _answers(generate(scene, person, (0.5, 0.5), seed=seed)):
            assert "a person in yellow" in text and "centre of the view" in text
            assert "the sidewalk" in text and "road" not in text
        for text in _answers(generate(scene, road, (0.5, 0.9), seed=seed)):
            assert "road" in text and "mostly gray" in text and "lower part" in text


def test_two_cars_are_described_differently(scene):
    red, blue = scene.instances[:2]
    for s1 in range(4):
        for s2 in range(4):
            a = set(_answers(generate(scene, red, (0.2, 0.6), seed=s1)))
            b = set(_answers(generate(scene, blue, (0.8, 0.6), seed=s2)))
            assert not a & b
    assert "blue car" in _answers(generate(scene, blue, (0.8, 0.6), seed=0))[0]


def test_same_target_two_points_same_facts(scene):
    red = scene.instances[0]
    f1 = templates.description_facts(scene, red)
    assert generate(scene, red, (0.15, 0.55), seed=7) == generate(scene, red, (0.28, 0.78), seed=7)
    assert templates.description_facts(scene, red) == f1
    # other seeds reword the same facts
    for seed in range(6):
        for text in _answers(generate(scene, red, (0.2, 0.6), seed=seed)):
            assert "a red car" in text and "on the left of the view" in text


def test_deterministic_for_a_seed(scene):
    for t in scene.instances:
        assert generate(scene, t, (0.5, 0.5), seed=123) == generate(scene, t, (0.5, 0.5), seed=123)
    texts = {tuple(_answers(generate(scene, scene.instances[0], (0.2, 0.6), seed=s))) for s in range(10)}
    assert len(texts) > 1  # the seed does vary the wording


def test_look_alikes_get_ranks():
    # a red car taking a tiny part of the view (10 x 15 px = 0.75%) in the same third as the red car
    # (6%, a small part): the share tells them apart
    s = street(extra=[("26002", "car", (50, 60), (0, 15), RED, 26)])
    assert templates.description_facts(s, s.instances[3]).rank is None
    assert templates.description_facts(s, s.instances[0]).rank is None
    # a red car of 20 x 50 px = 5% (a small part, as the red car's 6%) centred at (10, 45): also "left, middle"
    s = street(extra=[("26002", "car", (20, 70), (0, 20), RED, 26)])
    a, b = s.instances[3], s.instances[0]
    fa, fb = templates.description_facts(s, a), templates.description_facts(s, b)
    assert fa.rank == (1, 3) and fb.rank == (2, 3)
    assert templates.description_facts(s, s.instances[1]).rank is None  # the blue car differs
    ta = _answers(generate(s, a, (0.05, 0.45), seed=0))
    tb = _answers(generate(s, b, (0.2, 0.6), seed=0))
    assert all("leftmost of the three cars" in t for t in ta)
    assert all("second from the left of the three cars" in t for t in tb)
    assert not set(ta) & set(tb)


def test_no_coordinates_in_any_text(scene):
    for t in scene.instances:
        for seed in range(5):
            for r in generate(scene, t, (0.5, 0.5), seed=seed, config=GeneratorConfig(max_reasoning=6)):
                for text in (r.question or "", r.answer):
                    assert not FLOAT.search(text), text
                if r.kind == "description":
                    assert not re.search(r"\d", r.answer), r.answer


def test_box_only_scene_without_semantic():
    px = np.zeros((H, W, 3), np.uint8)
    px[:] = (128, 128, 128)
    px[20:80, 20:80] = RED
    a = ResolvedInstance(Instance("1", "bus"), None, (0.1, 0.2, 0.4, 0.8), None, 0.18)
    b = ResolvedInstance(Instance("2", "chair"), None, (0.5, 0.5, 0.6, 0.8), None, 0.03)
    s = ResolvedScene(px, W, H, [a, b], None)
    rows = generate(s, a, (0.25, 0.5), seed=1, config=GeneratorConfig(max_reasoning=6))
    text = _answers(rows)[0]
    assert "a red bus" in text and "a sizeable part of the view" in text  # box area 0.18
    assert "a gray chair" in text and "to the left of" in text
    fams = {r.generator.rsplit("/", 1)[-1] for r in rows if r.kind == "reasoning"}
    assert "surface" not in fams and "road_side" not in fams


def test_config_controls_rows(scene):
    red = scene.instances[0]
    rows = generate(scene, red, (0.2, 0.6), seed=0, config=GeneratorConfig(description_no_question=False))
    assert [r.question is None for r in rows if r.kind == "description"] == [False]
    rows = generate(scene, red, (0.2, 0.6), seed=0, config=GeneratorConfig(max_reasoning=0))
    assert all(r.kind == "description" for r in rows) and len(rows) == 2
    rows = generate(scene, red, (0.2, 0.6), seed=0, config=GeneratorConfig(families=("count",)))
    assert [r.generator for r in rows if r.kind == "reasoning"] == [f"{GENERATOR_VERSION}/reasoning/count"]
    assert all(isinstance(r, GeneratedQA) for r in rows)


@pytest.mark.parametrize("kwargs,field", [
    ({"max_reasoning": -1}, "max_reasoning"),
    ({"max_reasoning": 1.5}, "max_reasoning"),
    ({"max_reasoning": True}, "max_reasoning"),
    ({"families": ("count", "bogus")}, "families"),
    ({"families": ("count", "count")}, "families"),
    ({"families": "count"}, "families"),
    ({"description_no_question": "yes"}, "description_no_question"),
    ({"description_with_question": 1}, "description_with_question"),
])
def test_config_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        GeneratorConfig(**kwargs)


def test_config_defaults():
    cfg = GeneratorConfig(families=["count", "advice"])
    assert cfg.families == ("count", "advice")
    assert GeneratorConfig().families == REASONING_FAMILIES
    assert GENERATOR_VERSION == "templates-1.0"


def test_bad_point_and_crowd_target(scene):
    with pytest.raises(ValueError, match="point"):
        generate(scene, scene.instances[0], (1.5, 0.2), seed=0)
    with pytest.raises(ValueError, match="point"):
        generate(scene, scene.instances[0], (float("nan"), 0.2), seed=0)
    crowd = ResolvedInstance(Instance("c", "car", crowd=True), None, (0.1, 0.1, 0.2, 0.2), None, 0.01)
    with pytest.raises(ValueError, match="crowd"):
        generate(scene, crowd, (0.15, 0.15), seed=0)


@pytest.mark.parametrize("cat,plural", [
    ("car", "cars"), ("person", "people"), ("bus", "buses"), ("traffic light", "traffic lights"),
    ("motorcycle", "motorcycles"), ("dining table", "dining tables"), ("sheep", "sheep"),
])
def test_plural(cat, plural):
    assert templates.plural(cat) == plural
