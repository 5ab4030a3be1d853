"""The hand-built street scene both generator test files work on.

The scene (H=100, W=200): building (label 11) above row 55, a sidewalk band (8) on rows
55..69, a road band (7) from row 70 down; a red car (rows 50..79, cols 20..59) on the road
on the left, a blue car (rows 52..81, cols 140..179) on the road on the right, a person
in yellow (rows 35..61, cols 95..102) on the sidewalk, and the road as a stuff region.
"""

from __future__ import annotations

import numpy as np

from owl_data.ingest.geometry import ResolvedInstance, ResolvedScene, mask_bbox
from owl_data.records import Instance

H, W = 100, 200
RED, BLUE, YELLOW = (200, 30, 30), (30, 60, 200), (230, 200, 40)


def box_instance(px, sem, iid, cat, rows, cols, colour=None, label=None, kind="thing", crowd=False):
    """A rectangular instance painted into ``px`` (RGB) and ``sem`` (label ids) in place."""
    m = np.zeros((H, W), bool)
    m[rows[0]:rows[1], cols[0]:cols[1]] = True
    if colour is not None:
        px[m] = colour
    if label is not None:
        sem[m] = label
    return ResolvedInstance(Instance(iid, cat, kind, crowd=crowd), m, mask_bbox(m), None, m.sum() / (H * W))


def street(semantic: bool = True, extra=()) -> ResolvedScene:
    """The documented scene; ``extra`` adds ``box_instance`` argument tuples
    (iid, cat, rows, cols, colour, label[, kind, crowd])."""
    px = np.zeros((H, W, 3), np.uint8)
    px[:] = (120, 90, 70)
    sem = np.full((H, W), 11, np.uint8)
    sem[55:70], px[55:70] = 8, (170, 160, 150)
    sem[70:], px[70:] = 7, (128, 128, 128)
    insts = [
        box_instance(px, sem, "26000", "car", (50, 80), (20, 60), RED, 26),
        box_instance(px, sem, "26001", "car", (52, 82), (140, 180), BLUE, 26),
        box_instance(px, sem, "24000", "person", (35, 62), (95, 103), YELLOW, 24),
    ]
    insts += [box_instance(px, sem, *e) for e in extra]
    road = sem == 7
    insts.append(ResolvedInstance(Instance("7", "road", "stuff"), road, mask_bbox(road), None, road.mean()))
    return ResolvedScene(px, W, H, insts, sem if semantic else None)
