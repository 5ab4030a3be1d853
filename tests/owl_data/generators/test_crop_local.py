"""Crop-local facts equal the full-frame computation they replaced.

The references below are the former implementations, kept small: every instance has a full
(H, W) mask, gaps come from a Euclidean distance transform of the whole frame, colour and
ground read full-frame masks. The code under test gets the instances as
:func:`~owl_data.ingest.geometry.resolve_instance` makes them (crops of their boxes).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import ndimage

from owl_data.generators import colour
from owl_data.generators import scene_facts as sf
from owl_data.generators.ground import _bottom_row
from owl_data.generators.regions import box_pixels
from owl_data.ingest.geometry import ResolvedScene, resolve_instance
from owl_data.ingest.points import PointConfig, _interior_points, _least_square_reaching, _visible, sample_points
from owl_data.records import Instance, MaskArray

# --- references: the full-frame computations ----------------------------------------------


def ref_gap(scene, full, a, b):
    """Former ``gap``: EDT of the whole frame outside ``a``, read on ``b``'s pixels."""
    if full[a.instance] is not None and full[b.instance] is not None:
        d = float(ndimage.distance_transform_edt(~full[a.instance])[full[b.instance]].min())
        return max(d - 1.0, 0.0) / math.hypot(scene.width, scene.height)
    return sf._box_gap_px(scene, a, b) / math.hypot(scene.width, scene.height)


def ref_neighbours(scene, full, t):
    found = []
    for i, o in sf.others(scene, t):
        g = ref_gap(scene, full, t, o)
        if g <= sf.NEIGHBOUR_MAX_GAP and sf._box_gap_px(scene, t, o) / sf._diag(scene) <= sf.NEIGHBOUR_MAX_GAP:
            found.append(sf.Neighbour(i, o, g, sf.relation(scene, t, o)))
    return sorted(found, key=lambda n: (n.gap, n.index))


def ref_colour(scene, full, inst):
    c1, r1, c2, r2 = box_pixels(scene, inst)
    m = ndimage.binary_erosion(full[inst.instance], structure=np.ones((3, 3), bool), iterations=colour.ERODE_PX)
    px = scene.pixels[r1:r2, c1:c2][m[r1:r2, c1:c2]]  # raster order
    return colour.name_from_terms(colour.pixel_terms(px[::max(1, -(-px.shape[0] // colour.MAX_VOTERS))]))


def ref_bottom_row(full, inst):
    return int(np.flatnonzero(full[inst.instance].any(axis=1))[-1])


def ref_visible(scene, full, t):
    m = full[t.instance]
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    vis = m[r0:r1, c0:c1].copy()
    for o in scene.instances:
        if o is not t and full[o.instance] is not None and o.kind == "thing":
            vis &= ~full[o.instance][r0:r1, c0:c1]
    return vis, int(r0), int(c0)


# --- scenes --------------------------------------------------------------------------------


def make_scene(masks, H, W, sem=None, seed=0, kinds=None):
    """A ResolvedScene of full masks resolved as the build does (crops), and {instance: full mask}."""
    rng = np.random.default_rng(seed)
    px = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    insts, full = [], {}
    for n, m in enumerate(masks):
        kind = (kinds or {}).get(n, "thing")
        cat = "road" if kind == "stuff" else ("person", "car", "pole")[n % 3]
        r = resolve_instance(Instance(str(n), cat, kind, geometry=MaskArray(m)), declared=(W, H), raw=(W, H),
                             orientation=1, rotate=False)
        insts.append(r)
        full[r.instance] = m
    return ResolvedScene(px, W, H, insts, sem), full


def rect(H, W, r1, r2, c1, c2):
    m = np.zeros((H, W), bool)
    m[r1:r2, c1:c2] = True
    return m


def check_all(scene, full):
    """Every crop-local fact of every instance equals the full-frame reference."""
    for t in scene.instances:
        assert np.array_equal(t.full_mask(scene.width, scene.height), full[t.instance])
        for o in scene.instances:
            if o is not t:
                assert sf.gap(scene, t, o) == ref_gap(scene, full, t, o), (t.instance, o.instance)
        ref = ref_neighbours(scene, full, t) if t.kind == "thing" else None
        if ref is not None:
            assert sf.neighbours(scene, t) == ref
            assert sf.nearest_neighbour(scene, t) == (ref[0] if ref else None)
        assert sf.colour_of(scene, t) == ref_colour(scene, full, t)
        assert _bottom_row(scene, t) == ref_bottom_row(full, t)
        vis, r0, c0 = _visible(scene, t)
        rvis, rr0, rc0 = ref_visible(scene, full, t)
        assert (r0, c0) == (rr0, rc0) and np.array_equal(vis, rvis)
    assert _points(scene) == _points(full_scene(scene, full))


def _points(scene):
    """The sampler's points and skips, by instance name."""
    points, skipped = sample_points(scene, PointConfig(min_area_px=4), seed=3, key="k")
    return ([(p.target.instance, p.x, p.y, p.origin, p.index) for p in points],
            [(i.instance, why) for i, why in skipped])


def full_scene(scene, full):
    """The same scene with every mask as a full frame at offset (0, 0)."""
    import dataclasses
    insts = [dataclasses.replace(i, mask=full[i.instance], offset=(0, 0)) for i in scene.instances]
    return ResolvedScene(scene.pixels, scene.width, scene.height, insts, scene.semantic)


def test_edges_corners_touching_and_overlap():
    H, W = 48, 64
    masks = [
        rect(H, W, 0, 5, 0, 7),        # top-left corner
        rect(H, W, 40, 48, 57, 64),    # bottom-right corner
        rect(H, W, 0, 48, 30, 31),     # full-height 1-px line (touches the top and bottom edges)
        rect(H, W, 10, 20, 31, 40),    # touches the line (gap 0)
        rect(H, W, 15, 25, 35, 45),    # overlaps the previous one
        rect(H, W, 44, 48, 0, 64),     # full-width band at the bottom edge, overlaps the corner
    ]
    scene, full = make_scene(masks, H, W)
    check_all(scene, full)
    assert sf.gap(scene, scene.instances[2], scene.instances[3]) == 0.0
    assert scene.instances[0].offset == (0, 0) and scene.instances[0].mask.shape == (5, 7)
    assert scene.instances[1].offset == (57, 40)


def test_thin_and_diagonal_shapes():
    H, W = 40, 60
    diag1 = np.zeros((H, W), bool)
    diag1[np.arange(30), np.arange(30) + 5] = True          # 8-connected diagonal line
    diag2 = np.zeros((H, W), bool)
    diag2[np.arange(25) + 10, 50 - np.arange(25)] = True    # anti-diagonal, crossing near diag1
    ring = np.zeros((H, W), bool)
    ring[30:40, 45:60] = True
    ring[32:38, 48:57] = False                               # a hole: a pixel set inside it
    dot = rect(H, W, 34, 35, 52, 53)                         # in the hole
    scene, full = make_scene([diag1, diag2, ring, dot], H, W)
    check_all(scene, full)


@pytest.mark.parametrize("dx,within", [(56, True), (57, False)])
def test_far_neighbour_just_within_and_beyond_the_limit(dx, within):
    # W=200, H=100: the limit is 0.25 * hypot = 55.9 px; two 1-px dots dx apart have gap dx - 1
    H, W = 100, 200
    masks = [rect(H, W, 50, 51, 10, 11), rect(H, W, 50, 51, 10 + dx, 11 + dx)]
    scene, full = make_scene(masks, H, W)
    check_all(scene, full)
    nb = sf.nearest_neighbour(scene, scene.instances[0])
    assert (nb is not None) == within
    if within:
        assert nb.gap == (dx - 1) / math.hypot(W, H)


def test_far_diagonal_neighbour_and_ties_go_to_the_lower_index():
    H, W = 100, 200
    # target at the top-left corner; candidates 1 and 2 at the same distance (3-4-5 both ways)
    masks = [rect(H, W, 0, 1, 0, 1), rect(H, W, 40, 41, 30, 31), rect(H, W, 30, 31, 40, 41),
             rect(H, W, 99, 100, 199, 200)]  # the far corner: no neighbour of anything near
    scene, full = make_scene(masks, H, W)
    check_all(scene, full)
    nbs = sf.neighbours(scene, scene.instances[0])
    assert [n.index for n in nbs] == [1, 2] and nbs[0].gap == nbs[1].gap == 49 / math.hypot(W, H)
    assert sf.nearest_neighbour(scene, scene.instances[3]) is None


def test_ground_facts_on_crops_match_full_frame():
    from owl_data.generators.ground import road_side, surface_under
    H, W = 100, 200
    sem = np.full((H, W), 11, np.uint8)
    sem[60:75], sem[75:] = 8, 7
    sem[90:, :30] = 8
    masks = [rect(H, W, 40, 70, 10, 20), rect(H, W, 50, 90, 150, 180), rect(H, W, 70, 100, 0, 40),
             sem == 7]
    scene, full = make_scene(masks, H, W, sem=sem, kinds={3: "stuff"})
    check_all(scene, full)
    ref = full_scene(scene, full)
    for t, rt in zip(scene.instances, ref.instances):
        assert surface_under(scene, t) == surface_under(ref, rt)
        assert road_side(scene, t) == road_side(ref, rt)
    assert surface_under(scene, scene.instances[0]) == "sidewalk"
    assert road_side(scene, scene.instances[1]) == "right"


def _blob(draw, H, W):
    kind = draw(st.sampled_from(["rect", "blob", "line"]))
    m = np.zeros((H, W), bool)
    if kind == "rect":
        r1, c1 = draw(st.integers(0, H - 1)), draw(st.integers(0, W - 1))
        m[r1:draw(st.integers(r1 + 1, H)), c1:draw(st.integers(c1 + 1, W))] = True
    elif kind == "line":
        r, c = draw(st.integers(0, H - 1)), draw(st.integers(0, W - 1))
        dr, dc, n = draw(st.sampled_from([-1, 0, 1])), draw(st.sampled_from([-1, 0, 1])), draw(st.integers(1, 40))
        rr, cc = np.clip(r + dr * np.arange(n), 0, H - 1), np.clip(c + dc * np.arange(n), 0, W - 1)
        m[rr, cc] = True
    else:
        seed = draw(st.integers(0, 2**16))
        noise = ndimage.gaussian_filter(np.random.default_rng(seed).random((H, W)), 3)
        m = noise > np.quantile(noise, draw(st.floats(0.6, 0.98)))
    return m


@st.composite
def scenes(draw):
    H, W = draw(st.integers(8, 40)), draw(st.integers(8, 60))
    masks = [_blob(draw, H, W) for _ in range(draw(st.integers(2, 5)))]
    return H, W, [m for m in masks if m.any()]


@settings(max_examples=60, deadline=None)
@given(scenes())
def test_random_scenes_equal_full_frame(case):
    H, W, masks = case
    if len(masks) < 2:
        return
    scene, full = make_scene(masks, H, W)
    check_all(scene, full)


def ref_interior_points(mask, k, cfg, rng):
    """Former sampler core: the distance transform itself, compared as floats."""
    dt = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    dmax = float(dt.max())
    if dmax < cfg.min_interior_px:
        return "too_thin"
    first = np.unravel_index(int(np.argmax(dt)), dt.shape)
    picks = [(int(first[0]), int(first[1]))]
    if k > 1:
        cand = np.flatnonzero(dt.ravel() >= max(cfg.min_interior_px, cfg.interior_fraction * dmax))
        cand = cand[cand != first[0] * dt.shape[1] + first[1]]
        if cand.size:
            chosen = rng.choice(cand, size=min(k - 1, cand.size), replace=False)
            picks += [(int(c // dt.shape[1]), int(c % dt.shape[1])) for c in np.sort(chosen)]
    return picks


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**16), st.integers(4, 70), st.integers(4, 70), st.floats(0.3, 0.95),
       st.floats(1.0, 6.0), st.floats(0.0, 1.0), st.integers(1, 6))
def test_interior_points_equal_the_distance_transform_ones(seed, h, w, q, min_px, frac, k):
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).random((h, w)), 2)
    mask = noise > np.quantile(noise, q)
    cfg = PointConfig(min_interior_px=min_px, interior_fraction=frac)
    got = _interior_points(mask, k, cfg, np.random.default_rng(seed))
    assert got == ref_interior_points(mask, k, cfg, np.random.default_rng(seed))


@pytest.mark.parametrize("t", [0.0, 1.0, 2.0, 2.5, math.sqrt(2), math.sqrt(8), 7.0000001, 99.99, 300.0])
def test_least_square_reaching(t):
    s = _least_square_reaching(t)
    assert math.sqrt(s) >= t and (s == 0 or math.sqrt(s - 1) < t)
