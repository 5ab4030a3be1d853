"""Build time against decode-only time of the same files, for 1 and 2 local workers and Ray.

Decoding is the physical floor of ``owl-data build``: every file the build decodes (each
photo, and for Cityscapes-layout sources its instanceIds and labelIds maps) must be decoded
once. This script times (1) Pillow decoding every such file to arrays, (2) full builds with
each ``--workers`` count of the local executor and, where ``BuildConfig`` has an
``executor`` field and ray is installed, with ``executor="ray"`` on a local Ray of
``--ray-cpus`` CPUs; it prints seconds, images/s, build/decode, ms per task row, the
2-worker speed-up over 1 and Ray against 2 local workers (goals of issue 11: build/decode
<= 2 with 1 worker, speed-up >= 1.7, Ray/local-2 <= 1.3).

    python benchmarks/build_bench.py                      # the embedded default, tiled
    python benchmarks/build_bench.py --source cityscapes=DIR --source coco=IMG:ANN.json
    python benchmarks/build_bench.py --full-size 100      # 100 frames of 2048x1024

``--full-size N`` writes N Cityscapes-layout frames of ``--frame-size`` (2048x1024) made
from the real sample ``--sample`` (default ``../shared/data/cityscapes``): each frame is a
sample frame (cycling through them) with the photo bicubic-upscaled plus Gaussian noise of
sigma 3 levels drawn from ``default_rng((seed, k))`` for frame ``k``, and the instanceIds and
labelIds maps nearest-upscaled; frame ``k`` is ``<city><k // 25:03d>_000000_<k:06d>`` so
names and groups differ. Without the sample, the synthetic source draws the frames at that
size (``write_default_scenes(width=, height=)``). ``--frames-dir DIR`` keeps the frames for a
later run (reused when DIR holds the same settings), e.g. for a profile of the builds only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from owl_data.build import driver
from owl_data.build.config import BuildConfig
from owl_data.build.driver import SourceSpec, run_build
from owl_data import records as owl_records
from owl_data.records import Scene
from owl_data.sources import SOURCES, SourceOptions, get_reader
from owl_data.sources.synthetic.scenes import write_default_scenes

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cityscapes"
"""The real Cityscapes sample beside the project (``../shared/data/cityscapes``)."""
FRAMES_PER_CITY = 25
IMAGE, INSTANCE, LABEL = "_leftImg8bit.png", "_gtFine_instanceIds.png", "_gtFine_labelIds.png"


# --- generated frames -------------------------------------------------------------------

def _sample_frames(sample: Path) -> list[tuple[str, str, Path, Path, Path | None]]:
    """(split, city, photo, instanceIds, labelIds or None) of every frame of a Cityscapes root."""
    out = []
    for photo in sorted(sample.glob(f"leftImg8bit/*/*/*{IMAGE}")):
        split, city = photo.parent.parent.name, photo.parent.name
        stem = photo.name[: -len(IMAGE)]
        gt = sample / "gtFine" / split / city
        if (gt / f"{stem}{INSTANCE}").is_file():
            label = gt / f"{stem}{LABEL}"
            out.append((split, city, photo, gt / f"{stem}{INSTANCE}", label if label.is_file() else None))
    return out


def _nearest(arr: np.ndarray, width: int, height: int) -> np.ndarray:
    """(h, w) map -> (height, width) by nearest neighbour (pixel (y, x) takes (y*h//height, x*w//width))."""
    h, w = arr.shape
    return arr[(np.arange(height) * h // height)[:, None], (np.arange(width) * w // width)[None, :]]


def upscaled_frames(root: Path, n: int, size: tuple[int, int], sample: Path, seed: int = 0) -> list[list[str]]:
    """Write ``n`` frames of ``size`` (W, H) made from the sample's frames under ``root``.

    Returns:
        Per frame, the paths (relative to ``root``) of the files written.

    Raises:
        ValueError: the sample holds no frame with an instanceIds map.
    """
    frames = _sample_frames(sample)
    if not frames:
        raise ValueError(f"no Cityscapes frame with instanceIds under {sample}")
    width, height = size
    bases = []
    for split, city, photo, inst, label in frames:
        with Image.open(photo) as im:
            rgb = np.asarray(im.convert("RGB").resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
        with Image.open(inst) as im:
            ids = _nearest(np.asarray(im), width, height).astype(np.uint16)
        lab = None
        if label is not None:
            with Image.open(label) as im:
                lab = _nearest(np.asarray(im), width, height).astype(np.uint8)
        bases.append((split, city, rgb, ids, lab))
    written = []
    for k in range(n):
        split, city, rgb, ids, lab = bases[k % len(bases)]
        town = f"{city}{k // FRAMES_PER_CITY:03d}"
        stem = f"{town}_000000_{k:06d}"
        noise = np.random.default_rng((seed, k)).normal(0.0, 3.0, size=rgb.shape).astype(np.float32)
        files = {f"leftImg8bit/{split}/{town}/{stem}{IMAGE}": np.clip(np.round(rgb + noise), 0, 255).astype(np.uint8),
                 f"gtFine/{split}/{town}/{stem}{INSTANCE}": ids}
        if lab is not None:
            files[f"gtFine/{split}/{town}/{stem}{LABEL}"] = lab
        for rel, arr in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / rel)
        written.append(sorted(files))
    return written


def drawn_frames(root: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[list[str]]:
    """Draw ``max(n, 2)`` synthetic frames of ``size`` (a fifth, at least one, in val); files per frame."""
    val = max(1, n // 5)
    train = max(1, n - val)
    write_default_scenes(root, seed=seed, train=train, val=val, width=size[0], height=size[1])
    written = []
    for photo in sorted(root.glob(f"leftImg8bit/*/*/*{IMAGE}")):
        stem = photo.name[: -len(IMAGE)]
        gt = photo.parent.relative_to(root / "leftImg8bit")
        written.append([str(photo.relative_to(root))] + [f"gtFine/{gt}/{stem}{s}" for s in
                                                          (INSTANCE, LABEL, "_gtFine_polygons.json")])
    return written


def make_frames(folder: Path, n: int, size: tuple[int, int], sample: Path, seed: int = 0) -> tuple[Path, list[list[str]], str]:
    """Frames under ``folder/root`` (reused when ``folder/frames.json`` records the same settings).

    Returns:
        (root, files per frame relative to root, what they are: "upscaled sample" or "drawn").
    """
    kind = "upscaled sample" if _sample_frames(sample) else "drawn"
    settings = {"n": n, "size": list(size), "seed": seed, "kind": kind, "sample": str(sample)}
    record = folder / "frames.json"
    root = folder / "root"
    if record.is_file():
        saved = json.loads(record.read_text())
        if saved["settings"] == settings:
            return root, saved["files"], kind
    folder.mkdir(parents=True, exist_ok=True)
    record.unlink(missing_ok=True)
    shutil.rmtree(root, ignore_errors=True)  # frames of other settings must not stay in the root
    if kind == "drawn":
        files = drawn_frames(root, n, size, seed)
    else:
        files = upscaled_frames(root, n, size, sample, seed)
    record.write_text(json.dumps({"settings": settings, "files": files}))
    return root, files, kind


# --- timing -------------------------------------------------------------------------------

def decoded_files(specs: list[SourceSpec]) -> list[tuple[Path, bool]]:
    """(path, is a photo) of every file the build decodes: each Scene's photo, and a Cityscapes
    root's instanceIds and labelIds maps (those present), found on disk for Cityscapes roots
    so that listing them decodes nothing."""
    paths: list[tuple[Path, bool]] = []
    for s in specs:
        if SOURCES.get(s.name) is SOURCES["cityscapes"]:
            for _, _, photo, inst, label in _sample_frames(Path(s.spec)):
                paths += [(photo, True), (inst, False)] + ([(label, False)] if label is not None else [])
            continue
        records = get_reader(s.name)(s.spec, SourceOptions(name=s.name))
        expand = getattr(owl_records, "iter_expanded", None)  # readers that defer decoding to workers
        for r in expand(records) if expand is not None else records:
            if isinstance(r, Scene):
                paths.append((r.ref.path, True))
    return paths


def decode_all(paths: list[tuple[Path, bool]]) -> float:
    """Seconds to decode every file to a numpy array (photos to RGB, label maps as stored)."""
    t = time.perf_counter()
    for p, photo in paths:
        with Image.open(p) as im:
            np.asarray(im.convert("RGB") if photo else im)
    return time.perf_counter() - t


def task_rows(manifest: dict) -> int:
    return sum(sum(v.values()) for k, v in manifest["rows"].items() if k not in ("images", "image_refs"))


def timed_build(specs: list[SourceSpec], out: Path, cfg: BuildConfig) -> tuple[float, dict, dict]:
    """(seconds, manifest, the report's timings: ``startup_s`` of the pool or Ray, ``chunks_s``,
    ``consolidate_tail_s``) of one build."""
    t = time.perf_counter()
    report = run_build(specs, out, cfg)
    return time.perf_counter() - t, report.manifest, dict(report.timings)


# stages of the profile: (label, a function of the build whose cumulative time is the stage's)
STAGES = [
    ("decode photo (load_image)", "owl_data/ingest/images.py", "load_image"),
    ("label maps (load_frame)", "owl_data/sources/cityscapes.py", "load_frame"),
    ("  of which instances/crops", "owl_data/sources/cityscapes.py", "_instances"),
    ("resolve geometry", "owl_data/build/scene.py", "_resolve"),
    ("point sampling", "owl_data/ingest/points.py", "sample_points"),
    ("  of which distance transform", "owl_data/ingest/points.py", "_squared_depth"),
    ("text (generators)", "owl_data/generators/__init__.py", "generate"),
    ("  of which colour", "owl_data/generators/colour.py", "colour_of"),
    ("  of which neighbours", "owl_data/generators/scene_facts.py", "nearest_neighbour"),
    ("chunk write (save_chunk)", "owl_data/build/chunks.py", "save_chunk"),
    ("consolidation (streamed)", "owl_data/build/accounting.py", "feed"),
    ("consolidation (tail)", "owl_data/build/accounting.py", "finish"),
]


def profile_build(specs: list[SourceSpec], out: Path) -> None:
    """Profile a 1-worker build (consolidation in the same thread so cProfile sees it) and print
    each stage's share of the build's time."""
    import cProfile
    import functools
    import pstats

    from owl_data.build import accounting

    prof = cProfile.Profile()
    real = driver.Consolidation
    driver.Consolidation = functools.partial(accounting.Consolidation, background=False)
    try:
        t = time.perf_counter()
        prof.runcall(run_build, specs, out, BuildConfig(workers=1))
        total = time.perf_counter() - t
    finally:
        driver.Consolidation = real
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    print(f"profile of a 1-worker build ({total:.2f} s under cProfile):")
    for label, path, name in STAGES:
        ct = sum(v[3] for (f, _, n), v in stats.items() if n == name and f.endswith(path))
        print(f"  {label:<32} {ct:7.2f} s  {100 * ct / total:5.1f}%")
    top = sorted(((v[2], f"{Path(f).name}:{n}") for (f, _, n), v in stats.items()), reverse=True)[:12]
    print("  top functions by own time: " + ", ".join(f"{k} {t:.2f} s" for t, k in top))


def line(label: str, dt: float, n: int, rows: int, t_decode: float) -> str:
    return (f"{label:<22}: {dt:7.2f} s  {n / dt:7.2f} images/s  {rows} rows  {1000 * dt / max(rows, 1):6.2f} ms/row  "
            f"build/decode {dt / t_decode:6.2f}")


def ray_build(specs: list[SourceSpec], tmp: Path, cpus: int, t_decode: float, n: int) -> tuple[float, str] | None:
    """Build with ``executor="ray"`` on a fresh local Ray of ``cpus`` CPUs (printing its start-up
    and the build); (seconds without the executor's start-up, fingerprint), or None after printing
    why Ray is not available."""
    if "executor" not in {f.name for f in dataclasses.fields(BuildConfig)}:
        print("ray: not available (BuildConfig has no 'executor' field)")
        return None
    try:
        import ray
    except ImportError:
        print("ray: not available (ray is not installed: pip install -e '.[ray]')")
        return None
    t = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, _temp_dir=tempfile.mkdtemp(prefix="ray", dir="/tmp"),
             log_to_driver=False)
    print(f"ray start-up          : {time.perf_counter() - t:7.2f} s  (ray.init, num_cpus={cpus})")
    try:
        dt, m, t = timed_build(specs, tmp / "out_ray", BuildConfig(workers=cpus, executor="ray"))
    finally:
        ray.shutdown()
    print(line(f"build ray cpus={cpus}", dt, n, task_rows(m), t_decode))
    print(f"  start-up {t.get('startup_s', 0.0):.2f} s (apart), scenes {t.get('chunks_s', 0.0):.2f} s, "
          f"commit after the last scene {t.get('consolidate_tail_s', 0.0):.2f} s")
    return dt - t.get("startup_s", 0.0), m["fingerprint"]


# --- main -----------------------------------------------------------------------------------

def _specs(args: argparse.Namespace, tmp: Path) -> tuple[list[SourceSpec], str]:
    """The sources to build and a line saying what they are."""
    if args.source:
        return [SourceSpec.parse(s) for s in args.source], "given sources"
    if args.full_size:
        w, h = (int(v) for v in args.frame_size.lower().split("x"))
        folder = Path(args.frames_dir) if args.frames_dir else tmp / "frames"
        t = time.perf_counter()
        root, files, kind = make_frames(folder, args.full_size, (w, h), Path(args.sample), args.seed)
        what = f"{len(files)} {kind} frames of {w}x{h} under {root} (made in {time.perf_counter() - t:.1f} s)"
        return [SourceSpec("cityscapes", str(root), synthetic=kind == "drawn")], what
    specs = []
    for k in range(args.copies):  # one source per copy needs distinct names: aliases of the reader
        root = write_default_scenes(tmp / f"scenes{k}", seed=k)
        SOURCES[f"cityscapes{k}"] = SOURCES["cityscapes"]
        specs.append(SourceSpec(f"cityscapes{k}", str(root), synthetic=True))
    return specs, f"{args.copies} copies of the embedded default scenes"


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", action="append", default=[], help="NAME=SPEC as for owl-data build")
    ap.add_argument("--copies", type=int, default=20, help="default scene sets to draw when no --source")
    ap.add_argument("--full-size", type=int, default=0, metavar="N", help="build N generated full-size frames")
    ap.add_argument("--frame-size", default="2048x1024", help="WxH of the --full-size frames")
    ap.add_argument("--sample", default=str(SAMPLE), help="Cityscapes root the frames are made from")
    ap.add_argument("--frames-dir", default="", help="keep (and reuse) the generated frames here")
    ap.add_argument("--seed", type=int, default=0, help="seed of the frames' noise / drawing")
    ap.add_argument("--workers", default="1,2", help="local worker counts to time, comma-separated")
    ap.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray (0: skip Ray)")
    ap.add_argument("--profile", action="store_true", help="also profile a 1-worker build by stage")
    return ap.parse_args()


def main() -> None:
    args = _parse()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        specs, what = _specs(args, tmp)
        print(what)
        paths = decoded_files(specs)
        decode_all(paths[:2])  # warm up
        t_decode = decode_all(paths)
        n = sum(photo for _, photo in paths)
        print(f"images: {n}, files decoded: {len(paths)}")
        print(f"{'decode only':<22}: {t_decode:7.2f} s  {n / t_decode:7.2f} images/s")
        times, work, prints = {}, {}, set()
        for workers in (int(w) for w in args.workers.split(",")):
            dt, m, t = timed_build(specs, tmp / f"out{workers}", BuildConfig(workers=workers))
            times[workers], work[workers] = dt, dt - t.get("startup_s", 0.0)
            prints.add(m["fingerprint"])
            print(line(f"build workers={workers}", dt, n, task_rows(m), t_decode))
            print(f"  start-up {t.get('startup_s', 0.0):.2f} s (apart), scenes {t.get('chunks_s', 0.0):.2f} s, "
                  f"commit after the last scene {t.get('consolidate_tail_s', 0.0):.2f} s")
        ray = ray_build(specs, tmp, args.ray_cpus, t_decode, n) if args.ray_cpus > 0 else None
        _summary(times, work, ray, prints, t_decode)
        if args.profile:
            profile_build(specs, tmp / "out_profile")


def _summary(times: dict[int, float], work: dict[int, float], ray: tuple[float, str] | None, prints: set[str],
             t_decode: float) -> None:
    if 1 in times:
        r = times[1] / t_decode
        print(f"build/decode, 1 worker: {r:.2f} (goal <= 2: {'met' if r <= 2 else 'not met'})")
    if 1 in times and 2 in times:
        s = work[1] / work[2]
        print(f"speed-up 2 workers / 1: {s:.2f}x without the pool's start-up, {times[1] / times[2]:.2f}x with it "
              f"(goal >= 1.7: {'met' if s >= 1.7 else 'not met'})")
    if ray is not None and 2 in times:
        r = ray[0] / work[2]
        print(f"ray / 2 local workers : {r:.2f} without start-up (goal <= 1.3: {'met' if r <= 1.3 else 'not met'})")
    if ray is not None:
        prints.add(ray[1])
    print(f"fingerprints: {'all equal' if len(prints) == 1 else 'DIFFER'} {sorted(prints)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
