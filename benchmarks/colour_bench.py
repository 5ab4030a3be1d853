"""Colour namer against human colour words: DriveLM key objects' ``Visual_description``.

For every key object of ``../shared/data/drivelm`` (or ``--drivelm DIR``) whose visual
description names a colour ("Black sedan.", "White truck."), the namer
(:func:`owl_data.generators.colour.colour_of`) is run on that object's region in its camera
image, found the way the build finds it: the DriveLM reader (:mod:`owl_data.sources.drivelm`)
gives the instance (a box, no mask), :func:`owl_data.ingest.geometry.resolve_instance` puts it
in the stored upright frame, and the namer reads the box's central half. The human word is
mapped to a basic term by :data:`HUMAN_TO_BASIC` (printed); modifiers (dark, light...) are
dropped. Traffic lights and signals are left out: their "Green light" is a lamp state, not a
body colour. A two-term answer ("red and white") agrees when it contains the human term.

Goal (issue 13): agreement >= 90% where a colour is stated, abstentions <= 20%.

Run: ``PYTHONPATH=. python benchmarks/colour_bench.py [--drivelm DIR]``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

from owl_data.generators.colour import BASIC_TERMS, colour_of, name_from_terms, pixel_terms
from owl_data.generators.regions import box_pixels
from owl_data.ingest.frame import annotation_frame
from owl_data.ingest.geometry import ResolvedScene, resolve_instance
from owl_data.ingest.images import load_image
from owl_data.records import Scene
from owl_data.sources import SourceOptions
from owl_data.sources.drivelm import read

HUMAN_TO_BASIC: dict[str, str] = {
    **{t: t for t in BASIC_TERMS},
    "grey": "gray", "silver": "gray", "champagne": "white", "beige": "white", "cream": "white",
    "ivory": "white", "golden": "yellow", "gold": "yellow", "tan": "brown", "bronze": "brown",
    "maroon": "red", "burgundy": "red", "navy": "blue", "teal": "blue", "cyan": "blue", "violet": "purple",
    "magenta": "purple",
}
"""Human colour word -> basic term (champagne -> beige -> white, golden -> yellow, silver/grey -> gray)."""

MODIFIERS = frozenset({"dark", "light", "bright", "pale", "deep", "metallic"})
"""Words dropped before the colour word ("dark gray" -> gray)."""

_SIGNAL = re.compile(r"traffic[ _-]?(light|signal)|\bsignal\b|\blight\b", re.I)


def human_colour(description: str) -> str | None:
    """The basic term of the first colour word of ``description``, or None when it names none."""
    for w in re.findall(r"[a-z]+", description.lower()):
        if w in MODIFIERS:
            continue
        if w in HUMAN_TO_BASIC:
            return HUMAN_TO_BASIC[w]
    return None


def agrees(stated: str, human: str) -> bool:
    """A stated term (or pair "a and b") agrees when it is, or contains, the human term."""
    return human in stated.split(" and ")


def body_colour(scene: ResolvedScene, inst) -> str | None:
    """The namer's vote (same pixel rule and thresholds) on the body part of the box: columns
    25-75% and rows 50-85% of the box (below a vehicle's windows, above its wheels' contact)."""
    c1, r1, c2, r2 = box_pixels(scene, inst)
    w, h = c2 - c1, r2 - r1
    patch = scene.pixels[r1 + int(0.5 * h): r1 + int(0.85 * h), c1 + w // 4: c2 - w // 4]
    return name_from_terms(pixel_terms(patch.reshape(-1, 3)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--drivelm", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
                    / "drivelm")
    ap.add_argument("--region", choices=("build", "body"), default="build",
                    help="build: the box's central half (what the build reads); body: the vehicle body below "
                         "the windows (box columns 25-75%%, rows 50-85%%)")
    args = ap.parse_args()
    print("mapping (human word -> basic term):")
    print("  " + ", ".join(f"{k}->{v}" for k, v in HUMAN_TO_BASIC.items() if k != v))
    print(f"  modifiers dropped: {', '.join(sorted(MODIFIERS))}; traffic lights/signals left out")
    rows = []  # (item, description, human, stated)
    seen = Counter()
    for rec in read(str(args.drivelm), SourceOptions(name="drivelm")):
        if not isinstance(rec, Scene):
            continue
        img = load_image(rec.ref.path)
        af = annotation_frame(rec.ref.declared_size, img.raw_size, img.orientation, rec.ref.frame)
        insts = [resolve_instance(i, declared=af.size, raw=af.size, orientation=img.orientation,
                                  rotate=af.rotate) for i in rec.instances]
        scene = ResolvedScene(pixels=img.pixels, width=img.width, height=img.height, instances=insts)
        for r in insts:
            seen["key objects"] += 1
            desc = r.source.attributes.get("visual_description", "") or ""
            if _SIGNAL.search(r.category) or _SIGNAL.search(desc):
                seen["traffic lights/signals left out"] += 1
                continue
            human = human_colour(desc)
            if human is None:
                seen["no colour word"] += 1
                continue
            rows.append((r.source.item, desc, human, colour_of(scene, r) if args.region == "build"
                         else body_colour(scene, r)))
    n = len(rows)
    stated = [x for x in rows if x[3] is not None]
    right = [x for x in stated if agrees(x[3], x[2])]
    print("\n" + ", ".join(f"{k}: {v}" for k, v in seen.items()))
    print(f"n = {n} key objects with a human colour word")
    if not n:
        return
    print(f"stated: {len(stated)}, agreement where stated: {len(right)}/{len(stated)} = "
          f"{100.0 * len(right) / max(len(stated), 1):.1f}% (goal >= 90%)")
    print(f"abstentions: {n - len(stated)}/{n} = {100.0 * (n - len(stated)) / n:.1f}% (goal <= 20%)")
    conf = Counter((h, s or "(none)") for _, _, h, s in rows if s is None or not agrees(s, h))
    print("confusions (human -> stated: count):")
    for (h, s), k in sorted(conf.items(), key=lambda kv: -kv[1]):
        print(f"  {h} -> {s}: {k}")
    print("all objects:")
    for item, desc, h, s in rows:
        print(f"  {item}: {desc!r} human={h} stated={s}")


if __name__ == "__main__":
    main()
