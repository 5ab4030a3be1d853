"""Peak memory and throughput of ``owl-data build`` as the number of frames grows.

For each size of ``--sizes`` (default 200,1000,2000) the build of that many generated
Cityscapes-layout frames of ``--frame-size`` (1024x512; made as in ``build_bench.py
--full-size``: the real sample upscaled with per-frame noise, or drawn frames when the sample
is absent) runs in a fresh subprocess. The frames are made once for the largest size
(not timed) and each size's root holds hard links to the first N of them.

Peak memory, two ways:

* ``tree peak``: the largest sum of RSS over the build process and all its descendants
  (worker processes), sampled every ``--interval`` s with psutil (when installed; a
  peak shorter than the interval can be missed);
* ``maxrss self`` / ``maxrss children``: ``getrusage(RUSAGE_SELF / RUSAGE_CHILDREN).ru_maxrss``
  of the build process, read after the build (for children: the largest single finished and
  waited-for descendant, not a sum; 0 with one worker, which runs in the process, and 0 with
  forkserver pools too, whose workers are the forkserver's children: use the tree peak).

The tree peak sums RSS, so pages the forkserver shares with its workers count once per
process. The driver holds the scenes of up to two chunks at once (``chunk_scenes``, 16, while
the next chunk is read), so a size under two chunks can peak lower for that reason alone:
compare sizes of at least ``2 * chunk_scenes`` frames.

Throughput: frames / seconds of ``run_build`` in the subprocess (imports and start excluded).
It prints a table and peak(largest size) / peak(smallest size) (goal of issue 11: <= 1.2).

    python benchmarks/build_scale.py --sizes 200,1000,2000 --workers 2 --frames-dir /tmp/scale_frames

``--tracemalloc DIR`` (diagnosis only, slows the build): each subprocess traces Python
allocations and dumps the snapshot taken nearest its traced peak to ``DIR/<N>.snap``; the
top-10 lines of growth between the smallest and the largest size are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_bench import SAMPLE, make_frames  # noqa: E402  (the same frame generation)

from owl_data.build.config import BuildConfig  # noqa: E402

try:
    import psutil
except ImportError:  # the rusage figures still come
    psutil = None


# --- the child: one build -------------------------------------------------------------------

def _near_peak_snapshots(stop: threading.Event, keep: dict, every: float = 0.2) -> None:
    """Keep the tracemalloc snapshot taken when traced memory was highest (polled)."""
    best = 0
    while not stop.wait(every):
        cur, _ = tracemalloc.get_traced_memory()
        if cur > 1.1 * best:
            best = cur
            keep["snap"] = tracemalloc.take_snapshot()


def child(root: str, out: str, workers: int, snap: str) -> None:
    """Build ``root`` into ``out``; print one JSON line of seconds, rows and ru_maxrss (KiB)."""
    from owl_data.build.config import BuildConfig
    from owl_data.build.driver import SourceSpec, run_build

    stop, keep = threading.Event(), {}
    if snap:
        tracemalloc.start(10)
        watcher = threading.Thread(target=_near_peak_snapshots, args=(stop, keep), daemon=True)
        watcher.start()
    t = time.perf_counter()
    m = run_build([SourceSpec("cityscapes", root)], Path(out), BuildConfig(workers=workers)).manifest
    dt = time.perf_counter() - t
    if snap:
        stop.set()
        watcher.join()
        peak = tracemalloc.get_traced_memory()[1]
        keep.get("snap", tracemalloc.take_snapshot()).dump(snap)
    else:
        peak = 0
    rows = sum(sum(v.values()) for k, v in m["rows"].items() if k not in ("images", "image_refs"))
    print(json.dumps({"seconds": dt, "rows": rows, "fingerprint": m["fingerprint"], "traced_peak": peak,
                      "maxrss_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "maxrss_children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))


# --- the parent: sizes, sampling, table -----------------------------------------------------

def _tree_rss(proc) -> int:
    """Bytes of RSS of a psutil process and its descendants (those that vanish meanwhile skipped)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def measure(root: Path, out: Path, workers: int, interval: float, snap: str) -> dict:
    """Run one build in a fresh interpreter; its JSON line plus ``tree_peak`` (bytes, or None)."""
    cmd = [sys.executable, __file__, "--child", str(root), str(out), str(workers), snap]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak = None
    if psutil is not None:
        watched = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                peak = max(peak, _tree_rss(watched))
            except psutil.NoSuchProcess:
                break
            time.sleep(interval)
    stdout, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"build of {root} failed (exit {proc.returncode})")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["tree_peak"] = peak
    return result


def link_subset(pool: Path, files: list[list[str]], n: int, root: Path) -> None:
    """``root`` holding hard links to the files of the first ``n`` frames of ``pool``."""
    for frame in files[:n]:
        for rel in frame:
            if (pool / rel).exists():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                os.link(pool / rel, root / rel)


def _print_table(results: dict[int, dict]) -> None:
    mib = 1 / 2**20
    print(f"{'frames':>7} {'build s':>8} {'images/s':>9} {'tree peak MiB':>14} {'maxrss self MiB':>16} "
          f"{'maxrss children MiB':>20} {'rows':>8} {'traced peak MiB':>16}")
    for n, r in sorted(results.items()):
        tree = f"{r['tree_peak'] * mib:14.1f}" if r["tree_peak"] is not None else f"{'n/a':>14}"
        print(f"{n:>7} {r['seconds']:8.2f} {n / r['seconds']:9.2f} {tree} {r['maxrss_self'] / 1024:16.1f} "
              f"{r['maxrss_children'] / 1024:20.1f} {r['rows']:>8} {r['traced_peak'] * mib:16.1f}")
    lo, hi = results[min(results)], results[max(results)]
    if min(results) < 2 * BuildConfig().chunk_scenes:
        print(f"note: {min(results)} frames < 2 chunks of {BuildConfig().chunk_scenes} scenes: its peak holds fewer "
              "chunks in flight than a larger build's")
    if lo["tree_peak"] is not None:
        ratio, how = hi["tree_peak"] / lo["tree_peak"], "tree peak (psutil)"
    else:
        ratio = (hi["maxrss_self"] + hi["maxrss_children"]) / (lo["maxrss_self"] + lo["maxrss_children"])
        how = "maxrss self + children"
    print(f"peak({max(results)}) / peak({min(results)}) = {ratio:.2f} by {how} "
          f"(goal <= 1.2: {'met' if ratio <= 1.2 else 'not met'})")


def _growth(snaps: Path, small: int, large: int) -> None:
    """Print the top-10 source lines whose traced memory grew from ``small`` to ``large`` frames."""
    a = tracemalloc.Snapshot.load(str(snaps / f"{small}.snap"))
    b = tracemalloc.Snapshot.load(str(snaps / f"{large}.snap"))
    print(f"tracemalloc growth near the traced peak, {small} -> {large} frames (top 10 lines):")
    for stat in b.compare_to(a, "lineno")[:10]:
        print(f"  {stat}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="200,1000,2000", help="frame counts, comma-separated")
    ap.add_argument("--frame-size", default="1024x512", help="WxH of the generated frames")
    ap.add_argument("--workers", type=int, default=1, help="local build workers")
    ap.add_argument("--sample", default=str(SAMPLE), help="Cityscapes root the frames are made from")
    ap.add_argument("--frames-dir", default="", help="keep (and reuse) the generated frames here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between RSS samples")
    ap.add_argument("--tracemalloc", default="", metavar="DIR", help="dump near-peak snapshots here")
    args = ap.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    w, h = (int(v) for v in args.frame_size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = Path(args.frames_dir) if args.frames_dir else tmp / "frames"
        t = time.perf_counter()
        pool, files, kind = make_frames(folder, sizes[-1], (w, h), Path(args.sample), args.seed)
        print(f"{len(files)} {kind} frames of {w}x{h} (made in {time.perf_counter() - t:.1f} s, not counted)")
        print(f"workers: {args.workers}, RSS sampling: {'psutil every %gs' % args.interval if psutil else 'n/a'}")
        snaps = Path(args.tracemalloc) if args.tracemalloc else None
        if snaps is not None:
            snaps.mkdir(parents=True, exist_ok=True)
        results = {}
        for n in sizes:
            link_subset(pool, files, n, tmp / f"root{n}")
            snap = str(snaps / f"{n}.snap") if snaps is not None else ""
            results[n] = measure(tmp / f"root{n}", tmp / f"out{n}", args.workers, args.interval, snap)
        _print_table(results)
        if snaps is not None and len(sizes) > 1:
            _growth(snaps, sizes[0], sizes[-1])


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        main()
