"""Reasoning families: hand-worked answers on a toy street, recomputed answers on a real frame.

Toy scene (H=100, W=200), from toy_street.py: building (11) above row 55, sidewalk (8)
rows 55..69, road (7) from row 70; red car rows 50..79 x cols 20..59 (on the road, left),
blue car rows 52..81 x cols 140..179 (on the road, right), person rows 35..61 x cols
95..102 (on the sidewalk, centre), the road as a stuff region.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from owl_data.generators import GENERATOR_VERSION, GeneratorConfig, generate
from owl_data.generators import reasoning
from owl_data.generators import scene_facts as sf
from owl_data.ingest.geometry import ResolvedInstance, ResolvedScene, mask_bbox
from owl_data.records import Instance
from tests.owl_data.generators.toy_street import H, W, street
from tests.conftest import SHARED_DATA, need_shared_data

ALL = GeneratorConfig(max_reasoning=len(reasoning.FAMILY_FUNCTIONS))
PREFIX = f"{GENERATOR_VERSION}/reasoning/"




def by_family(rows) -> dict[str, str]:
    """{family: answer} of the reasoning rows (family parsed from the generator field)."""
    out = {}
    for r in rows:
        if r.kind == "reasoning":
            assert r.generator.startswith(PREFIX)
            fam = reasoning.family_of(r.generator)
            assert fam in reasoning.FAMILY_FUNCTIONS and fam not in out
            out[fam] = r.answer
    return out


@pytest.fixture
def scene():
    return street()


# --- hand-worked answers on the toy street --------------------------------------------------


def test_facts_hand_worked(scene):
    red, blue, person, road = scene.instances
    assert sf.count_same_category(scene, red) == 2
    assert sf.count_same_category(scene, person) == 1
    assert sf.count_same_category(scene, road) is None
    assert sf.surface_under(scene, red) == "road"
    assert sf.surface_under(scene, blue) == "road"
    assert sf.surface_under(scene, person) == "sidewalk"
    assert sf.road_side(scene, red) == "left"  # road spans cols 0..199 on rows 77..81: middle 100
    assert sf.road_side(scene, blue) == "right"
    assert sf.road_side(scene, person) is None  # no road around row 61
    assert sf.nearer(scene, red, person) == "nearer"  # bottoms 0.80 vs 0.62
    assert sf.nearer(scene, person, red) == "farther"
    assert sf.nearer(scene, red, blue) is None  # bottoms 0.80 vs 0.82: within the margin


def test_every_family_on_the_red_car(scene):
    red = scene.instances[0]
    ans = by_family(generate(scene, red, (0.2, 0.6), seed=0, config=ALL))
    assert set(ans) == set(reasoning.FAMILY_FUNCTIONS)
    assert ans["relation"] == "It is to the left of the nearest person."
    assert ans["count"] == "2 cars are visible, this one included."
    assert ans["road_side"] == "It is on the left side of the road."
    assert ans["nearer"] == "It is nearer to the camera than the nearest person."
    assert ans["surface"] == "It is on the road."
    assert "road" in ans["advice"] and "sidewalk" not in ans["advice"]


def test_person_and_blue_car(scene):
    red, blue, person, road = scene.instances
    ans = by_family(generate(scene, person, (0.5, 0.5), seed=3, config=ALL))
    assert ans["relation"] == "The person is to the right of the nearest car."
    assert ans["count"] == "Just 1: the person is the only one in view."
    assert ans["nearer"] == "The person is farther from the camera than the nearest car."
    assert ans["surface"] == "The person is on the sidewalk."
    assert "road_side" not in ans
    assert "road" not in ans["advice"].replace("into the road", "")  # never "on the road"
    ans = by_family(generate(scene, blue, (0.8, 0.6), seed=3, config=ALL))
    assert ans["relation"] == "It is to the right of the nearest person."
    assert ans["road_side"] == "It is on the right side of the road."
    ans = by_family(generate(scene, road, (0.5, 0.9), seed=3, config=ALL))
    assert set(ans) == {"advice"}


def test_relation_above_below_and_same_category_reference():
    # a traffic light right above the red car: the vertical offset dominates
    s = street(extra=[("tl", "traffic light", (10, 40), (35, 45), (20, 20, 20), 19)])
    light = s.instances[3]
    assert sf.relation(s, light, s.instances[0]) == "above"
    ans = by_family(generate(s, light, (0.2, 0.25), seed=0, config=ALL))
    assert ans["relation"] == "It is above the nearest car."
    assert "nearer" not in ans and "surface" not in ans  # not a grounded object
    assert "signal" in ans["advice"]
    # two cars next to each other: "the nearest other car"
    s = street(extra=[("26002", "car", (50, 80), (62, 90), (30, 160, 40), 26)])
    ans = by_family(generate(s, s.instances[0], (0.2, 0.6), seed=0, config=ALL))
    assert ans["relation"] == "It is to the left of the nearest other car."
    assert ans["count"].startswith("3 cars")


def test_skips_what_does_not_apply():
    s = street(semantic=False)
    ans = by_family(generate(s, s.instances[0], (0.2, 0.6), seed=0, config=ALL))
    assert "surface" not in ans and "road_side" not in ans
    assert "advice" not in ans  # no semantic map: not known to be a street scene
    lone = street()
    lone.instances = [lone.instances[0], lone.instances[3]]
    ans = by_family(generate(lone, lone.instances[0], (0.2, 0.6), seed=0, config=ALL))
    assert "relation" not in ans and "nearer" not in ans
    assert ans["count"] == "Just 1: it is the only car in view."


# --- regressions of the user review -----------------------------------------------------------


def _curb_scene():
    """H=256 (the default synthetic height): sidewalk rows 0..141, a one-row sidewalk strip
    continuing under a pole and a person that stand on it (bases on row 140), road from row
    142; a car whose base sits on the road."""
    h, w = 256, 128
    px = np.full((h, w, 3), 128, np.uint8)
    sem = np.full((h, w), 8, np.uint8)
    sem[142:] = 7

    def thing(iid, cat, rows, cols, label):
        m = np.zeros((h, w), bool)
        m[rows[0]:rows[1], cols[0]:cols[1]] = True
        sem[m] = label
        return ResolvedInstance(Instance(iid, cat), m, mask_bbox(m), None, m.sum() / (h * w))

    insts = [thing("17:0", "pole", (60, 141), (20, 23), 17),
             thing("24000", "person", (95, 141), (50, 60), 24),
             thing("26000", "car", (150, 200), (80, 120), 26)]
    return ResolvedScene(px, w, h, insts, sem)


def test_surface_reads_the_ground_right_under_the_contact():
    # the old 0.02*H band (5 rows) ran past the one-row curb strip into the road: "road"
    s = _curb_scene()
    pole, person, car = s.instances
    assert max(sf.SURFACE_BAND_MIN, round(sf.SURFACE_BAND * s.height)) == 1
    assert sf.surface_under(s, pole) == "sidewalk"
    assert sf.surface_under(s, person) == "sidewalk"
    assert sf.surface_under(s, car) == "road"
    ans = by_family(generate(s, person, (0.43, 0.46), seed=0, config=ALL))
    assert ans["surface"] == "The person is on the sidewalk."


def test_surface_needs_a_two_thirds_majority():
    # a car whose contact columns are 3 of 5 on the road, 2 on the sidewalk: 60% is no answer
    s = street(extra=[("26009", "car", (60, 70), (100, 105), (30, 160, 40), 26)])
    car = s.instances[3]
    s.semantic[70, 103:105] = 8
    assert sf.surface_under(s, car) is None
    s.semantic[70, 104] = 7  # 4 of 5 on the road: > 2/3
    assert sf.surface_under(s, car) == "road"


def test_counts_and_rank_totals_skip_slivers():
    # a large red car beside the red car (same words: ranks needed) and a 9-px car sliver
    big = ("26002", "car", (20, 70), (0, 20), (200, 30, 30), 26)
    sliver = ("26003", "car", (10, 13), (190, 193), (90, 90, 90), 26)
    s = street(extra=[big, sliver])
    red, a = s.instances[0], s.instances[3]
    assert sf.visible_pixels(s, s.instances[4]) == pytest.approx(9)
    assert not sf.countable(s, red) and sf.count_same_category(s, red) is None
    ans = by_family(generate(s, red, (0.2, 0.6), seed=0, config=ALL))
    assert "count" not in ans
    ta = [r.answer for r in generate(s, a, (0.05, 0.45), seed=0) if r.kind == "description"]
    tb = [r.answer for r in generate(s, red, (0.2, 0.6), seed=0) if r.kind == "description"]
    assert all("It is the leftmost among the cars in view." in t for t in ta), ta
    assert all("It is the second from the left among the cars in view." in t for t in tb), tb
    assert not any(re.search(r"three|four|of the \w+ cars", t) for t in ta + tb)
    assert not set(ta) & set(tb)
    # a sliver of exactly COUNT_MIN_PIXELS (4 x 6) pixels counts again
    s = street(extra=[big, ("26003", "car", (10, 14), (190, 196), (90, 90, 90), 26)])
    assert sf.COUNT_MIN_PIXELS == 24 and sf.count_same_category(s, s.instances[0]) == 4
    assert by_family(generate(s, s.instances[0], (0.2, 0.6), seed=0, config=ALL))["count"] == (
        "4 cars are visible, this one included.")
    tb = [r.answer for r in generate(s, s.instances[0], (0.2, 0.6), seed=0) if r.kind == "description"]
    assert all("second from the left of the four cars in view" in t for t in tb)
    # a person sliver blocks the person count, not the car count
    s = street(extra=[("24009", "person", (0, 2), (0, 5), (20, 20, 20), 24)])
    assert sf.count_same_category(s, s.instances[2]) is None
    assert sf.count_same_category(s, s.instances[0]) == 2


def test_advice_only_for_street_scenes_and_street_categories():
    # a COCO-like indoor photo: no semantic map, a bottle and a person
    px = np.full((H, W, 3), 200, np.uint8)
    bottle = ResolvedInstance(Instance("1", "bottle"), None, (0.1, 0.2, 0.2, 0.6), None, 0.04)
    person = ResolvedInstance(Instance("2", "person"), None, (0.5, 0.1, 0.7, 0.9), None, 0.16)
    coco = ResolvedScene(px, W, H, [bottle, person], None)
    for t in (bottle, person):
        for seed in range(8):
            assert "advice" not in by_family(generate(coco, t, (0.15, 0.4), seed=seed, config=ALL))
    # a street scene, but a category outside the street vocabulary: no advice either
    s = street(extra=[("b", "bench", (58, 66), (120, 135), (110, 60, 30), None),
                      ("d", "dog", (60, 68), (70, 80), (110, 60, 30), None)])
    for t in s.instances[3:5]:
        assert "advice" not in by_family(generate(s, t, (0.6, 0.62), seed=0, config=ALL))
    assert "Watch your step around it." not in {v for d in reasoning.ADVICE.values() for v in d.values()}
    for t in (s.instances[0], s.instances[2]):  # a car and a person of the street: advice
        assert "advice" in by_family(generate(s, t, (0.2, 0.6), seed=0, config=ALL))


def test_people_are_not_it():
    s = street(extra=[("25000", "rider", (30, 60), (185, 195), (30, 160, 40), 25)])
    red, person, rider = s.instances[0], s.instances[2], s.instances[3]
    for t, noun in ((person, "The person"), (rider, "The rider")):
        for seed in range(12):
            rows = generate(s, t, (0.5, 0.5), seed=seed, config=ALL)
            for r in rows:
                assert not re.search(r"(^|[.:] )It\b", r.answer), r.answer
                assert r.kind == "description" or "object" not in r.question, r.question
                if r.kind == "description":
                    assert noun in r.answer and not re.search(r"\d", r.answer)
            ans = by_family(rows)
            for fam in ("relation", "nearer", "surface", "road_side"):
                if fam in ans:
                    assert ans[fam].startswith(noun + " is "), ans[fam]
    # a person next to the target is neither "an object" nor "it"
    texts = {r.answer for seed in range(20) for r in generate(s, red, (0.2, 0.6), seed=seed)
             if r.kind == "description"}
    assert any("Closest to it is a person in yellow" in t for t in texts), texts
    assert not any("object is a person" in t or "of it." in t for t in texts), texts


def test_crowd_of_same_category_blocks_count():
    s = street(extra=[("cg", "car", (72, 95), (70, 130), (90, 90, 90), 26, "thing", True)])
    assert sf.count_same_category(s, s.instances[0]) is None
    assert "count" not in by_family(generate(s, s.instances[0], (0.2, 0.6), seed=0, config=ALL))
    # the crowd is context, never a neighbour
    assert sf.nearest_neighbour(s, s.instances[0]).instance.category == "person"


def test_selection_by_seed_and_config(scene):
    red = scene.instances[0]
    full = by_family(generate(scene, red, (0.2, 0.6), seed=0, config=ALL))
    orders = set()
    for seed in range(20):
        rows = generate(scene, red, (0.2, 0.6), seed=seed)
        reasoning_rows = [r for r in rows if r.kind == "reasoning"]
        assert len(reasoning_rows) == 3
        orders.add(tuple(r.generator for r in reasoning_rows))
        for fam, answer in by_family(rows).items():
            if fam != "advice":  # advice addresses a pedestrian or a driver by seed
                assert answer == full[fam]
        assert rows == generate(scene, red, (0.25, 0.7), seed=seed)
    assert len(orders) > 1
    rows = generate(scene, red, (0.2, 0.6), seed=0, config=GeneratorConfig(families=("surface", "road_side"), max_reasoning=1))
    assert len([r for r in rows if r.kind == "reasoning"]) == 1


# --- the real Cityscapes frame ---------------------------------------------------------------

DATA = SHARED_DATA / "cityscapes"
FRAME = "val/frankfurt/frankfurt_000000_000294"


def _real_scene():
    from cityscapesscripts.helpers.labels import id2label
    from PIL import Image

    img = DATA / "leftImg8bit" / f"{FRAME}_leftImg8bit.png"
    ids_p = DATA / "gtFine" / f"{FRAME}_gtFine_instanceIds.png"
    lab_p = DATA / "gtFine" / f"{FRAME}_gtFine_labelIds.png"
    for f in (img, ids_p, lab_p):
        need_shared_data("cityscapes", *f.relative_to(DATA).parts)
    px = np.asarray(Image.open(img).convert("RGB"))
    ids = np.asarray(Image.open(ids_p)).astype(np.int64)
    lab = np.asarray(Image.open(lab_p)).astype(np.uint8)
    h, w = lab.shape
    insts = []
    for v in np.unique(ids):
        if v < 1000:
            continue
        m = ids == v
        insts.append(ResolvedInstance(Instance(str(v), id2label[int(v) // 1000].name), m,
                                      mask_bbox(m), None, float(m.mean())))
    return ResolvedScene(px, w, h, insts, lab), ids, lab


def _box(m):
    rows, cols = np.nonzero(m)
    return cols.min(), rows.min(), cols.max() + 1, rows.max() + 1  # pixel edges


def _nearest_other(scene, t):
    """Brute force: the other instance with the smallest pixel-centre distance minus one."""
    tp = np.argwhere(t.mask)
    best = None
    for i, o in enumerate(scene.instances):
        if o is t:
            continue
        op = np.argwhere(o.mask)
        d = math.sqrt(min(((tp[:, None, :] - chunk[None, :, :]) ** 2).sum(-1).min()
                          for chunk in np.array_split(op, max(1, len(op) // 200))))
        g = max(d - 1, 0) / math.hypot(scene.width, scene.height)
        if g <= sf.NEIGHBOUR_MAX_GAP and (best is None or g < best[0]):
            best = (g, o)
    return None if best is None else best[1]


def _surface(lab, m):
    """Label majority (> 2/3) in the thin band just below the contact columns (restated)."""
    h = lab.shape[0]
    x1, y1, x2, y2 = _box(m)
    depth = max(1, round(0.004 * h))
    reach = max(1, math.ceil(0.1 * (y2 - y1)))
    vals = []
    for c in range(x1, x2):
        rows = np.nonzero(m[:, c])[0]
        if rows.size and rows.max() >= y2 - reach:
            vals.extend(lab[rows.max() + 1 : rows.max() + 1 + depth, c].tolist())
    if not vals:
        return None
    label, n = max(((l, vals.count(l)) for l in set(vals)), key=lambda t: t[1])
    return {7: "road", 8: "sidewalk"}.get(label) if 3 * n > 2 * len(vals) else None


@pytest.mark.realdata
def test_real_frame_answers_match_recomputation():
    scene, ids, lab = _real_scene()
    h, w = lab.shape
    seen = set()
    descriptions = {}
    for t in scene.instances:
        cls = int(t.instance) // 1000
        ys, xs = np.nonzero(t.mask)
        pts = [((xs[k] + 0.5) / w, (ys[k] + 0.5) / h) for k in (0, len(xs) // 2, len(xs) - 1)]
        rows0 = generate(scene, t, pts[0], seed=11, config=ALL)
        for p in pts[1:]:  # every point on one target says the same
            assert generate(scene, t, p, seed=11, config=ALL) == rows0
        ans = by_family(rows0)
        seen |= set(ans)
        descriptions[t.instance] = {r.answer for r in rows0 if r.kind == "description"}
        for r in rows0:
            assert t.category in r.answer or r.kind == "reasoning"
            assert not re.search(r"\d\.\d", r.answer)
        x1, y1, x2, y2 = _box(t.mask)
        surface = _surface(lab, t.mask)
        it = f"The {t.category}" if t.category in ("person", "rider") else "It"
        same = [v for v in np.unique(ids) if v >= 1000 and v // 1000 == cls]
        countable = all((ids == v).sum() >= 24 for v in same)
        assert ("count" in ans) == countable, (t.instance, ans.get("count"))
        if "count" in ans:
            got = 1 if ans["count"].startswith("Just 1") else int(re.match(r"(\d+) ", ans["count"]).group(1))
            assert got == len(same)
        if "surface" in ans:
            assert ans["surface"] == f"{it} is on the {surface}."
        else:
            assert surface is None
        nb = _nearest_other(scene, t)
        if "relation" in ans or "nearer" in ans:
            assert nb is not None
            ref = f"the nearest {'other ' if nb.category == t.category else ''}{nb.category}."
            nx1, ny1, nx2, ny2 = _box(nb.mask)
            dx, dy = (x1 + x2 - nx1 - nx2) / 2, (y1 + y2 - ny1 - ny2) / 2
        if "relation" in ans:
            assert ans["relation"].endswith(ref)
            if abs(dx) >= abs(dy):
                assert ("left of" in ans["relation"]) == (dx < 0)
            else:
                assert ("above" in ans["relation"]) == (dy < 0)
        if "nearer" in ans:
            assert ans["nearer"].endswith(ref)
            assert abs(y2 - ny2) / h >= sf.NEARER_MARGIN
            assert ("nearer to the camera" in ans["nearer"]) == (y2 > ny2)
        if "road_side" in ans:
            half = max(1, round(0.02 * h))
            band = lab[max(y2 - 1 - half, 0) : y2 + half]
            cols = np.nonzero((band == 7).any(axis=0))[0]
            middle = (cols.min() + cols.max() + 1) / 2
            assert ("left side" in ans["road_side"]) == ((x1 + x2) / 2 < middle)
        if "advice" in ans:
            if re.search(r"\bon the road\b|\bIt is on the road", ans["advice"]):
                assert surface == "road"
            if "on the sidewalk" in ans["advice"]:
                assert surface == "sidewalk"
    # every category of this frame has a sliver (a 6 px person, a 6 px car): never counted
    assert {"surface", "relation", "nearer", "road_side", "advice"} <= seen and "count" not in seen
    texts = list(descriptions.values())  # different targets, different descriptions
    assert all(not (a & b) for i, a in enumerate(texts) for b in texts[i + 1:])
