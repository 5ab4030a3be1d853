"""Training benchmark. Part 1 (data path): padding fraction of stage-1 batches with and
without packing, on the same mix, in the same run.

Builds the embedded default corpus (all four tasks) with ``owl_data``, draws a 5:1:2:2 mix,
writes a tiny tokenizer with ``owl_train.model.tiny.init_tiny``, then collates the same rows
in batches of ``--batch-rows`` twice: padded to the longest row, and packed (first-fit into
sequences of ``--max-length``). Padding fraction = padding tokens / (B x L) over all batches.
Goal: packing leaves under 5% of tokens as padding.

    python benchmarks/train_bench.py [--samples 512] [--batch-rows 32] [--max-length 1024] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_inputs(root: Path, samples: int, seed: int = 0) -> tuple[Path, Path, Path]:
    """Corpus, mix and tiny model/tokenizer folders under ``root`` (reused when present)."""
    from owl_data.build import SourceSpec, run_build
    from owl_data.config import BuildConfig
    from owl_data.mix_io import MixConfig, write_mix
    from owl_data.synthetic import write_default_sources
    from owl_train.model.tiny import init_tiny

    corpus, mix, model = root / "corpus", root / f"mix-{samples}", root / "tiny"
    if not (corpus / "manifest.json").exists():
        sources = [SourceSpec(n, s, synthetic=True) for n, s in write_default_sources(root / "src", seed=seed)]
        run_build(sources, corpus, BuildConfig(seed=seed))
    if not (mix / "mix.json").exists():
        write_mix(corpus, mix, MixConfig(ratio=tuple(map(Fraction, (5, 1, 2, 2))), num_samples=samples, seed=seed))
    if not (model / "tokenizer.json").exists():
        init_tiny(model)
    return corpus, mix, model


def padding_stats(rows: list[dict], tokenizer, cfg, batch_rows: int) -> dict:
    """Encode ``rows`` (timed: rendering, tokenising, image preprocessing), then collate them in
    batches of ``batch_rows``; token counts."""
    from owl_train.data import Collator

    c = Collator(tokenizer, cfg)
    n = real = slots = sequences = 0
    secs = 0.0
    for a in range(0, len(rows), batch_rows):  # encode per batch: encoded pixel values are ~3 MB a row
        t0 = time.perf_counter()
        encoded = [e for e in (c.encode(r) for r in rows[a:a + batch_rows]) if e is not None]
        secs += time.perf_counter() - t0
        b = c(encoded)
        n += len(encoded)
        real += int(b["attention_mask"].sum())
        slots += b["input_ids"].numel()
        sequences += b["input_ids"].shape[0]
    return {"rows": n, "dropped": dict(c.dropped), "sequences": sequences, "real_tokens": real,
            "token_slots": slots, "padding_fraction": 1 - real / max(slots, 1), "encode_rows_per_s": n / secs}


def stage1_throughput(root: Path, corpus: Path, mix: Path, model: Path, *, pack: bool, steps: int,
                      batch_rows: int, max_length: int) -> dict:
    """Part 2 (stages): ``steps`` stage-1 optimizer steps of the tiny model on the same mix, timed
    (rows, collation, forward, backward, AdamW); samples/s and real tokens/s from the run's log."""
    import json

    from owl_train.config import TrainConfig
    from owl_train.stages import run_stage1

    out = root / f"stage1-{'packed' if pack else 'padded'}-{time.time_ns()}"
    cfg = TrainConfig(model=str(model), corpus=str(corpus), mix=str(mix), out=str(out), batch_size=batch_rows,
                      max_steps=steps, max_length=max_length, pack=pack, pad_to_multiple_of=8, lr=1e-3,
                      progress=False, tensorboard=False)
    t0 = time.perf_counter()
    res = run_stage1(cfg)
    secs = time.perf_counter() - t0
    rows = sum(len(ids) for ids in res.ids)
    last = [json.loads(ln) for ln in (out / "logs" / "metrics.jsonl").read_text().splitlines() if ln][-1]
    return {"steps": res.steps, "rows": rows, "samples_per_s": res.samples_per_s, "wall_s": secs,
            "loop_samples_per_s": last["samples_per_s"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--batch-rows", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--train-steps", type=int, default=8, help="stage-1 steps timed per layout (part 2)")
    args = ap.parse_args(argv)

    from transformers import AutoTokenizer

    from owl_data.mix_dataset import MixDataset
    from owl_train.data import DataConfig

    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        t0 = time.perf_counter()
        corpus, mix, model = build_inputs(root, args.samples)
        ds = MixDataset(corpus, mix)
        rows = [ds[i] for i in range(len(ds))]
        tok = AutoTokenizer.from_pretrained(model)
        print(f"inputs: {len(rows)} rows of a 5:1:2:2 mix, built in {time.perf_counter() - t0:.1f} s")
        results = {}
        for name, pack in (("padded", False), ("packed", True)):
            cfg = DataConfig(max_length=args.max_length, pack=pack, pad_to_multiple_of=8)
            results[name] = padding_stats(rows, tok, cfg, args.batch_rows)
        head = f"{'layout':8} {'rows':>6} {'seqs':>6} {'real tok':>10} {'slots':>10} {'padding':>8}"
        print(f"{head} {'encode rows/s':>14}")
        for name, r in results.items():
            print(f"{name:8} {r['rows']:6d} {r['sequences']:6d} {r['real_tokens']:10d} {r['token_slots']:10d} "
                  f"{r['padding_fraction']:8.2%} {r['encode_rows_per_s']:14.0f}")
        goal = results["packed"]["padding_fraction"] < 0.05
        print(f"packing padding fraction {results['packed']['padding_fraction']:.2%} "
              f"({'meets' if goal else 'misses'} the < 5% goal); dropped: {results['packed']['dropped'] or 'none'}")
        # Part 2 (stages): stage-1 samples/s with and without packing on the same mix.
        steps = max(1, min(args.train_steps, len(rows) // args.batch_rows))
        for name, pack in (("padded", False), ("packed", True)):
            r = stage1_throughput(root, corpus, mix, model, pack=pack, steps=steps, batch_rows=args.batch_rows,
                                  max_length=args.max_length)
            print(f"stage 1 {name:7}: {r['steps']} steps, {r['rows']} rows, {r['samples_per_s']:.1f} samples/s "
                  f"(tiny model, CPU, full fine-tune incl. collation)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
