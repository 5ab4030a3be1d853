"""Point sampler: interior points, skips, stuff share, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from owl_data.ingest.geometry import ResolvedInstance, ResolvedScene
from owl_data.ingest.points import PointConfig, sample_points
from owl_data.records import Instance


def _scene():
    H, W = 60, 100
    car = np.zeros((H, W), bool)
    car[10:30, 10:40] = True          # 20x30 rectangle: deepest pixels in its middle
    tiny = np.zeros((H, W), bool)
    tiny[50:53, 90:93] = True         # 9 px
    road = np.zeros((H, W), bool)
    road[40:, :] = True
    road &= ~tiny
    insts = [
        ResolvedInstance(Instance("26000", "car"), car, (0.1, 10 / 60, 0.4, 0.5), area=car.mean()),
        ResolvedInstance(Instance("24000", "person"), tiny, (0.9, 50 / 60, 0.93, 53 / 60), area=tiny.mean()),
        ResolvedInstance(Instance("7", "road", kind="stuff"), road, (0, 40 / 60, 1, 1), area=road.mean()),
        ResolvedInstance(Instance("9", "bus"), None, (0.5, 0.1, 0.8, 0.3), area=0.06),
    ]
    return ResolvedScene(np.zeros((H, W, 3), np.uint8), W, H, insts), car


def test_points_are_interior_and_deterministic():
    scene, car = _scene()
    cfg = PointConfig(points_per_instance=3, min_area_px=24, stuff_share=0.25)
    pts, skipped = sample_points(scene, cfg, seed=0, key="img")
    again, _ = sample_points(scene, cfg, seed=0, key="img")
    assert [(p.x, p.y) for p in pts] == [(p.x, p.y) for p in again]
    other, _ = sample_points(scene, cfg, seed=1, key="img")
    assert [(p.x, p.y) for p in pts] != [(p.x, p.y) for p in other]
    dt = ndimage.distance_transform_edt(np.pad(car, 1))[1:-1, 1:-1]
    car_pts = [p for p in pts if p.target.instance == "26000"]
    assert len(car_pts) == 3
    first = car_pts[0]
    i, j = int(first.y * 60), int(first.x * 100)
    assert dt[i, j] == dt.max() and (first.x * 100) % 1 == pytest.approx(0.5)  # pixel centre
    for p in car_pts:
        assert car[int(p.y * 60), int(p.x * 100)] and dt[int(p.y * 60), int(p.x * 100)] >= 3
    assert [(s[0].instance, s[1]) for s in skipped] == [("24000", "below_min_area")]
    bus = [p for p in pts if p.target.instance == "9"]
    assert len(bus) == 3 and all(p.origin == "box" for p in bus)
    assert (bus[0].x, bus[0].y) == pytest.approx((0.65, 0.2))
    assert all(0.5 <= p.x <= 0.8 and 0.1 <= p.y <= 0.3 for p in bus)
    road = [p for p in pts if p.target.instance == "7"]
    # stuff gets share / (1 - share) of the thing points: 6 thing points -> 2 on stuff
    assert len(road) == 2 and all(p.y >= 40 / 60 for p in road)


@pytest.mark.parametrize("field,value", [("points_per_instance", 0), ("stuff_share", 1.0),
                                         ("min_interior_px", 0.5), ("interior_fraction", 2)])
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        PointConfig(**{field: value})


@pytest.mark.parametrize("seed", range(4))
def test_squared_depth_is_exactly_scipys_squared_distance(seed, monkeypatch):
    """edt's squared distances equal the integer squares behind scipy's padded transform, and
    the scipy branch (taken for huge crops) gives the same integers."""
    from owl_data.ingest import points

    rng = np.random.default_rng(seed)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        mask = rng.random((h, w)) < rng.random()
        if rng.random() < 0.3:
            mask = mask.T  # a non-contiguous view
        ref = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        sq = points._squared_depth(mask)
        assert sq.dtype == np.int64 and np.array_equal(np.sqrt(sq.astype(np.float64)), ref)
        monkeypatch.setattr(points, "_EDT_EXACT_SIDE", 0)
        assert np.array_equal(points._squared_depth(mask), sq)
        monkeypatch.undo()
    assert points._squared_depth(np.zeros((0, 3), bool)).shape == (0, 3)
