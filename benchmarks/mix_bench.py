"""Mixing benchmark: our exact sampler against ``datasets.interleave_datasets``.

Four tasks of 250,000 rows, ratio 5:1:2:2, the first 1,000,000 picks. Ours: ``MixSampler``
(iterating ``Pick`` tuples, and the vectorised ``picks()`` a mix writer uses). Theirs:
``interleave_datasets`` over four in-memory Datasets (columns ``task``, ``row``) with
probabilities [0.5, 0.1, 0.2, 0.2] and ``stopping_strategy="all_exhausted"``: building its
index and iterating its first 1,000,000 rows. Each side runs in its own subprocess (clean
peak memory): time without tracing, then a second pass under tracemalloc for the Python/numpy
peak; the resident-set growth (ru_maxrss) of the run is reported too. Prints both times, the
speed ratio and both worst prefix deviations.

    python benchmarks/mix_bench.py [--rows 250000] [--picks 1000000] [--seed 0] [--no-trace]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARES = [Fraction(1, 2), Fraction(1, 10), Fraction(1, 5), Fraction(1, 5)]


def _ours(rows: int, picks: int, seed: int, vectorised: bool) -> np.ndarray:
    from owl_data.mix.sampler import MixSampler
    from owl_data.mix.spec import MixSpec

    spec = MixSpec.create({t: rows for t in ("vqa", "caption", "grounding", "point_vqa")}, [5, 1, 2, 2], seed=seed)
    s = MixSampler(spec, length=picks)
    if vectorised:
        return np.concatenate([s.picks(a, min(a + (1 << 16), picks)).task for a in range(0, picks, 1 << 16)])
    names = {"vqa": 0, "caption": 1, "grounding": 2, "point_vqa": 3}
    return np.fromiter((names[p.task] for p in s), dtype=np.int64, count=picks)


def _hf(rows: int, picks: int, seed: int) -> np.ndarray:
    import datasets

    datasets.disable_progress_bars()
    parts = [datasets.Dataset.from_dict({"task": np.full(rows, k, np.int64), "row": np.arange(rows)})
             for k in range(4)]
    mixed = datasets.interleave_datasets(parts, probabilities=[float(p) for p in SHARES], seed=seed,
                                         stopping_strategy="all_exhausted")
    out = np.empty(picks, np.int64)
    for i, r in enumerate(mixed):
        if i == picks:
            break
        out[i] = r["task"]
    return out


def _measure(which: str, rows: int, picks: int, seed: int, trace: bool = True) -> dict:
    from owl_data.mix.stats import prefix_deviation

    run = {"ours": lambda: _ours(rows, picks, seed, False),
           "ours-vectorised": lambda: _ours(rows, picks, seed, True),
           "hf": lambda: _hf(rows, picks, seed)}[which]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    labels = run()
    secs = time.perf_counter() - t0
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    peak = float("nan")
    if trace:  # a second pass: tracemalloc slows Python code several times
        tracemalloc.start()
        run()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    dev = prefix_deviation(labels, SHARES)
    return {"which": which, "seconds": secs, "tracemalloc_peak_mib": peak, "rss_growth_mib": rss,
            "worst_dev": max(dev), "dev_per_task": dev, "counts": np.bincount(labels, minlength=4).tolist()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=250_000)
    ap.add_argument("--picks", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-trace", action="store_true", help="skip the tracemalloc pass (RSS growth only)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(_measure(a.one, a.rows, a.picks, a.seed, trace=not a.no_trace)))
        return
    res = {}
    for which in ("ours", "ours-vectorised", "hf"):
        cmd = [sys.executable, __file__, "--one", which, "--rows", str(a.rows), "--picks", str(a.picks),
               "--seed", str(a.seed)] + (["--no-trace"] if a.no_trace else [])
        res[which] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
    print(f"4 tasks x {a.rows:,} rows, ratio 5:1:2:2, first {a.picks:,} picks")
    print(f"{'':34}{'seconds':>9}{'tracemalloc peak':>18}{'RSS growth':>12}{'worst prefix dev':>18}  counts")
    label = {"ours": "ours (MixSampler, Pick tuples)", "ours-vectorised": "ours (picks(), vectorised)",
             "hf": "datasets.interleave_datasets"}
    for k, r in res.items():
        print(f"{label[k]:34}{r['seconds']:9.3f}{r['tracemalloc_peak_mib']:15.1f} MiB{r['rss_growth_mib']:8.1f} MiB"
              f"{r['worst_dev']:18.3f}  {r['counts']}")
    ratio = res["hf"]["seconds"] / res["ours"]["seconds"]
    vratio = res["hf"]["seconds"] / res["ours-vectorised"]["seconds"]
    print(f"speed ratio (interleave / ours): {ratio:.1f}x iterating, {vratio:.1f}x vectorised "
          f"(goal >= 10x: {'met' if ratio >= 10 else 'NOT met'})")
    print(f"worst prefix deviation: ours {res['ours']['worst_dev']:.3f} (goal <= 1: "
          f"{'met' if res['ours']['worst_dev'] <= 1 else 'NOT met'}), interleave_datasets {res['hf']['worst_dev']:.1f}")


if __name__ == "__main__":
    main()
