"""Build throughput against decode-only throughput of the same images, in one run.

Decoding is the physical floor of ``owl-data build``: every image must be decoded once
(for colours and EXIF). This script times (1) Pillow decoding every image of the input to
RGB, and (2) full builds with 1 and 2 workers, and prints images/s and the ratio
build time / decode time (goal: <= 1.5).

    python benchmarks/build_bench.py                      # the embedded default, tiled
    python benchmarks/build_bench.py --source cityscapes=DIR --source coco=IMG:ANN.json

With no --source, the drawn default scenes are written ``--copies`` times (different seeds)
so the run holds enough images to time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from owl_data.build.driver import SourceSpec, run_build
from owl_data.build.config import BuildConfig
from owl_data.records import Scene
from owl_data.sources import SourceOptions, get_reader
from owl_data.sources.synthetic.scenes import write_default_scenes


def image_paths(specs: list[SourceSpec]) -> list[Path]:
    paths = []
    for s in specs:
        for r in get_reader(s.name)(s.spec, SourceOptions(name=s.name)):
            if isinstance(r, Scene):
                paths.append(r.ref.path)
    return paths


def decode_all(paths: list[Path]) -> float:
    t = time.perf_counter()
    for p in paths:
        with Image.open(p) as im:
            np.asarray(im.convert("RGB"))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", action="append", default=[], help="NAME=SPEC as for owl-data build")
    ap.add_argument("--copies", type=int, default=20, help="default scene sets to draw when no --source")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.source:
            specs = [SourceSpec.parse(s) for s in args.source]
        else:
            specs = []
            for k in range(args.copies):
                root = write_default_scenes(tmp / f"scenes{k}", seed=k)
                specs.append(SourceSpec("cityscapes", str(root), synthetic=True))
            # one source per copy needs distinct names: register aliases of the reader
            from owl_data.sources import SOURCES

            for k, s in enumerate(specs):
                SOURCES[f"cityscapes{k}"] = SOURCES["cityscapes"]
                specs[k] = SourceSpec(f"cityscapes{k}", s.spec, synthetic=True)
        paths = image_paths(specs)
        decode_all(paths[:2])  # warm up
        t_decode = decode_all(paths)
        n = len(paths)
        print(f"images: {n}")
        print(f"decode only      : {t_decode:7.2f} s  {n / t_decode:8.1f} images/s")
        for workers in (1, 2):
            t = time.perf_counter()
            m = run_build(specs, tmp / f"out{workers}", BuildConfig(workers=workers)).manifest
            dt = time.perf_counter() - t
            rows = sum(sum(v.values()) for k, v in m["rows"].items() if k not in ("images", "image_refs"))
            print(f"build workers={workers}: {dt:7.2f} s  {n / dt:8.1f} images/s  {rows} rows  "
                  f"ratio build/decode = {dt / t_decode:.2f} (goal <= 1.5: "
                  f"{'met' if dt / t_decode <= 1.5 else 'not met'})")


if __name__ == "__main__":
    main()
