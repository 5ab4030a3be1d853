"""Point-grounding benchmark: does a trained model answer from *what is at the point*?

Builds a scaled drawn street corpus (randomised layouts, ``--train-scenes`` / ``--val-scenes``
frames of the embedded default, point_vqa only), trains the tiny model (``init-tiny``) with stage 1
on a point_vqa-only mix for the same number of steps, seed and data for every variant, and
evaluates every variant on the val city's description rows with the controls of
:mod:`owl_train.eval.grounding` (the same code ``owl-train eval`` runs):

- ``hit``: the first category the answer names is the target's;
- ``layout_prior``: a 15-NN vote from (x, y) alone, fitted on the train description points;
- ``point_swap``: same image, point moved to a target of another category: the new one named;
- ``image_swap``: the question asked on another image at a point within 1/32 whose target differs:
  the second image's category named;
- ``blank``: a same-size image of the mean colour: the target still named (text + point alone).

Build, training and eval are timed separately; one table row per variant, with ``max_pixels`` and
the foveal crop size. Variants are the presets of :mod:`owl_train.model.variants`.

    python benchmarks/point_bench.py                       # the default variant and today's (b)
    python benchmarks/point_bench.py --variants all        # every preset, shorter budget each
    python benchmarks/point_bench.py --variants a_text,cd --steps 600 --json out.json

``--json FILE`` writes ``{"variants": {NAME: {"hit", "layout_prior", "point_swap", "image_swap",
"blank", "steps", "seconds", ...}}, "default": NAME}`` (rates in [0, 1], seconds of training).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Budgets on 2 CPU cores (see README "Point grounding"): the default run trains each variant for
# DEFAULT_STEPS; --variants all uses ALL_STEPS so each variant stays within about 5 minutes.
DEFAULT_STEPS = 3000
ALL_STEPS = 600
BATCH = 8
LR = 3e-3


def build_corpus(root: Path, train: int, val: int, width: int, height: int, seed: int, workers: int,
                 max_reasoning: int) -> Path:
    """Draw the scenes and build a point_vqa-only corpus under ``root`` (reused when present)."""
    from owl_data.build.driver import SourceSpec, run_build
    from owl_data.build.config import BuildConfig
    from owl_data.sources.synthetic.scenes import DEFAULT_SOURCE_NAME, write_default_scenes

    corpus = root / "corpus"
    if (corpus / "manifest.json").exists():
        return corpus
    src = write_default_scenes(root / "scenes", seed=seed, train=train, val=val, width=width, height=height)
    run_build([SourceSpec(DEFAULT_SOURCE_NAME, str(src), synthetic=True)], corpus,
              BuildConfig(seed=seed, workers=workers, max_reasoning=max_reasoning))
    return corpus


def write_point_mix(corpus: Path, out: Path, samples: int, seed: int) -> Path:
    from owl_data.mix.io import MixConfig, write_mix

    if not (out / "mix.json").exists():
        write_mix(corpus, out, MixConfig(ratio=(Fraction(1),), tasks=("point_vqa",), num_samples=samples, seed=seed))
    return out


def eval_rows(corpus: Path, limit: int) -> list[dict[str, Any]]:
    """``limit`` val description rows spread evenly over the split (every k-th, deterministic)."""
    from owl_train.data.rows import corpus_rows

    rows = corpus_rows(corpus, "point_vqa", "val", where=lambda r: r.get("kind") == "description")
    if limit and len(rows) > limit:
        step = len(rows) / limit
        rows = [rows[int(i * step)] for i in range(limit)]
    return rows


def run_variant(name: str, root: Path, corpus: Path, mix: Path, steps: int, max_pixels: int, seed: int,
                eval_limit: int, freeze_vision: bool, options: dict[str, Any], lr: float) -> dict[str, Any]:
    from owl_train.stages.config import TrainConfig
    from owl_train.eval.evaluate import EvalConfig, grounding_metrics
    from owl_train.infer import trained_image_budget
    from owl_train.model.tiny import init_tiny
    from owl_train.model.variants import VARIANTS
    from owl_train.stages.checkpoints import load_model_dir
    from owl_train.stages.stage1 import run_stage1
    from owl_train.data import DataConfig

    tag = "".join(f"-{k}{v}" for k, v in sorted(options.items()))
    vdir = root / f"v-{name}-s{steps}-p{max_pixels}-f{int(freeze_vision)}-lr{lr:g}{tag}"
    model_dir, run_dir = vdir / "init", vdir / "stage1"
    out: dict[str, Any] = {"variant": name, "steps": steps, "max_pixels": max_pixels, "freeze_vision": freeze_vision}
    t0 = time.perf_counter()
    if not (run_dir / "model" / "config.json").exists():
        import shutil

        shutil.rmtree(vdir, ignore_errors=True)
        opts = {k: v for k, v in options.items() if VARIANTS[name].get("foveal_crop") or not k.startswith("foveal")}
        init_tiny(model_dir, seed=seed, variant=name, options=opts or None)
        cfg = TrainConfig(stage="stage1", model=str(model_dir), corpus=str(corpus), mix=str(mix), out=str(run_dir),
                          max_steps=steps, lr=lr, batch_size=BATCH, grad_accum=1, max_pixels=max_pixels,
                          min_pixels=min(3136, max_pixels), max_length=512, num_workers=0, save_every=0,
                          log_every=max(1, steps // 5), tensorboard=False, progress=False, seed=seed,
                          freeze_vision=freeze_vision)
        res = run_stage1(cfg, note=lambda s: print(f"  [{name}] {s}", flush=True))
        tail = res.losses[-50:]
        out["final_loss"] = round(sum(tail) / max(1, len(tail)), 4)
    out["seconds"] = round(time.perf_counter() - t0, 1)

    t1 = time.perf_counter()
    loaded = load_model_dir(run_dir / "model")
    loaded.model.eval()
    c = loaded.model.config
    out["crop"] = (f"{c.foveal_crop_fraction:g} side->{c.foveal_crop_pixels}px" if c.foveal_crop else "-")
    budget = trained_image_budget(run_dir / "model")
    dc = DataConfig(min_pixels=budget.get("min_pixels", 3136), max_pixels=budget.get("max_pixels", max_pixels),
                    max_length=1 << 20)
    rows = eval_rows(corpus, eval_limit)
    notes: list[str] = []
    m = grounding_metrics(loaded, corpus, rows, None, dc, EvalConfig(split="val", batch_size=32, max_new_tokens=24),
                          notes)
    out["notes"] = notes
    out.update({k: m.get(k) for k in ("hit", "layout_prior", "point_swap", "image_swap", "blank",
                                      "blank_layout_prior", "hit_n", "point_swap_n", "image_swap_n", "blank_n",
                                      "majority_baseline")})
    out["eval_seconds"] = round(time.perf_counter() - t1, 1)
    return out


def _one(args: tuple) -> dict[str, Any]:
    """One variant in a worker process: one torch thread (two processes share two cores better than
    one process with two threads: the tiny model's ops are too small to split)."""
    import torch

    torch.set_num_threads(1)
    r = run_variant(*args)
    print(f"  {json.dumps(r)}", flush=True)
    return r


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:5.1f}%"


def print_table(results: dict[str, dict[str, Any]], build_s: float, default: str) -> None:
    print(f"\nbuild: {build_s:.1f} s")
    head = (f"{'variant':<14} {'max_px':>7} {'crop':<22} {'steps':>5} {'train s':>8} {'eval s':>7} "
            f"{'hit':>7} {'prior':>7} {'pt swap':>7} {'img swap':>8} {'blank':>7} {'n':>4} {'pairs':>5}")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        mark = " *" if name == default else ""
        print(f"{(name + mark):<14} {r['max_pixels']:>7} {r.get('crop', '-'):<22} {r['steps']:>5} "
              f"{r['seconds']:>8.1f} {r['eval_seconds']:>7.1f} {_pct(r['hit']):>7} {_pct(r['layout_prior']):>7} "
              f"{_pct(r['point_swap']):>7} {_pct(r['image_swap']):>8} {_pct(r['blank']):>7} "
              f"{r.get('hit_n') or 0:>4} {r.get('image_swap_n') or 0:>5}")
    print("* the default variant (init-tiny); rates over val description rows; prior: 15-NN from (x, y) alone")


def check_args(a: argparse.Namespace, names: list[str], options: dict[str, Any]) -> str | None:
    """What is wrong with the arguments, in one line (None: nothing), checked before any work
    (a bad ``--size`` or ``--lr`` is an error now, not a traceback after the build)."""
    import math
    import re

    from owl_data.build.config import BuildConfig
    from owl_data.sources.synthetic.scenes import DefaultScenes
    from owl_train.stages.config import TrainConfig
    from owl_train.model.tiny import tiny_config
    from owl_train.model.tokenizer import SPECIAL_TOKENS
    from owl_train.model.variants import VARIANTS

    if not names:
        return f"--variants {a.variants!r}: name at least one variant ('default', 'all' or some of {', '.join(VARIANTS)})"
    m = re.fullmatch(r"\s*([0-9]{1,6})\s*[xX]\s*([0-9]{1,6})\s*", a.size)
    if m is None:
        return f"--size {a.size[:40]!r}: write WIDTHxHEIGHT in pixels, e.g. 512x256"
    for flag, v, lo in (("--steps", a.steps, 1), ("--max-pixels", a.max_pixels, 1), ("--eval-limit", a.eval_limit, 0),
                        ("--workers", a.workers, 1), ("--max-reasoning", a.max_reasoning, 0), ("--jobs", a.jobs, 1),
                        ("--seed", a.seed, 0)):
        if v is not None and v < lo:
            return f"{flag} {v}: use an integer >= {lo}" + (" (or leave it out for the default)" if flag == "--steps" else "")
    if not (math.isfinite(a.lr) and a.lr > 0):
        return f"--lr {a.lr}: use a positive learning rate"
    if a.work.exists() and not a.work.is_dir():
        return f"--work {a.work}: is not a folder"
    if a.json is not None and a.json.is_dir():
        return f"--json {a.json}: is a folder; name a file"
    try:
        DefaultScenes(train=a.train_scenes, val=a.val_scenes, width=int(m.group(1)), height=int(m.group(2)))
        BuildConfig(seed=a.seed, workers=a.workers, max_reasoning=a.max_reasoning)
        TrainConfig(stage="stage1", model="m", corpus="c", mix="x", out="o", max_steps=a.steps or 1, lr=a.lr,
                    max_pixels=a.max_pixels, min_pixels=min(3136, a.max_pixels), max_length=512)
        ids = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
        for name in names:  # the options each variant takes (as run_variant passes them)
            opts = {k: v for k, v in options.items() if VARIANTS[name].get("foveal_crop") or not k.startswith("foveal")}
            tiny_config(ids, 1024, name, opts or None)
    except ValueError as exc:
        return str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    from owl_train.model.variants import DEFAULT_VARIANT, VARIANTS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default="default",
                    help="'default' (the default variant and b_image), 'all', or comma-separated preset names")
    ap.add_argument("--steps", type=int, default=None,
                    help=f"stage-1 steps per variant (default {DEFAULT_STEPS}; {ALL_STEPS} with --variants all)")
    ap.add_argument("--max-pixels", type=int, default=28 * 28 * 40, help="image budget (one token per 28x28 px)")
    ap.add_argument("--train-scenes", type=int, default=400)
    ap.add_argument("--val-scenes", type=int, default=20)
    ap.add_argument("--size", default="512x256", help="frame size WxH of the drawn scenes")
    ap.add_argument("--freeze-vision", action="store_true", help="keep the random ViT frozen (default: it trains)")
    ap.add_argument("--eval-limit", type=int, default=240, help="val description rows evaluated (0: all)")
    ap.add_argument("--workers", type=int, default=2, help="build processes")
    ap.add_argument("--max-reasoning", type=int, default=1, help="reasoning rows per point in the build")
    ap.add_argument("--crop-fraction", type=float, default=None, help="foveal crop side / image shorter side")
    ap.add_argument("--crop-pixels", type=int, default=None, help="foveal crop side after resizing (multiple of 28)")
    ap.add_argument("--lr", type=float, default=LR)
    ap.add_argument("--jobs", type=int, default=2,
                    help="variants trained at once, each in its own process with one torch thread (2 on 2 cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("bench_out/point"), help="work folder (reused across runs)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)

    if a.variants == "default":
        names = [DEFAULT_VARIANT] + (["b_image"] if DEFAULT_VARIANT != "b_image" else [])
    elif a.variants == "all":
        names = list(VARIANTS)
    else:
        names = list(dict.fromkeys(n.strip() for n in a.variants.split(",") if n.strip()))  # each once: one folder each
    bad = [n for n in names if n not in VARIANTS]
    if bad:
        print(f"error: unknown variant(s) {bad}; known: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    options: dict[str, Any] = {}
    if a.crop_fraction is not None:
        options["foveal_crop_fraction"] = a.crop_fraction
    if a.crop_pixels is not None:
        options["foveal_crop_pixels"] = a.crop_pixels
    problem = check_args(a, names, options)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    steps = a.steps if a.steps is not None else (ALL_STEPS if a.variants == "all" else DEFAULT_STEPS)
    w, h = (int(v) for v in a.size.lower().split("x"))

    root = a.work / f"scenes-{a.train_scenes}-{a.val_scenes}-{w}x{h}-s{a.seed}-r{a.max_reasoning}"
    t0 = time.perf_counter()
    corpus = build_corpus(root, a.train_scenes, a.val_scenes, w, h, a.seed, a.workers, a.max_reasoning)
    build_s = time.perf_counter() - t0
    mix = write_point_mix(corpus, root / f"mix-{steps * BATCH}", steps * BATCH, a.seed)
    print(f"corpus {corpus} ({build_s:.1f} s); mix {mix}", flush=True)

    args = [(name, root, corpus, mix, steps, a.max_pixels, a.seed, a.eval_limit, a.freeze_vision, options, a.lr)
            for name in names]
    print(f"{len(names)} variant(s), {steps} steps each, {max(1, a.jobs)} at a time", flush=True)
    if a.jobs <= 1:
        got = [_one(x) for x in args]
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(a.jobs, maxtasksperchild=1) as pool:
            got = pool.map(_one, args, chunksize=1)
    results = dict(zip(names, got))
    print_table(results, build_s, DEFAULT_VARIANT)
    if a.json is not None:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"variants": results, "default": DEFAULT_VARIANT,
                                      "build_seconds": round(build_s, 1)}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
