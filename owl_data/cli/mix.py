"""``owl-data mix`` and ``owl-data mix-stats`` (registered on :data:`owl_data.cli.app.app`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from owl_data.cli.app import _fail, app, console, flag_message, out_console
from owl_data.corpus.schema import TASK_ORDER
from owl_data.mix.spec import WARN_REPEATS


@app.command("mix")
def mix(
    corpus: Path = typer.Argument(..., help="Corpus folder."),
    ratio: str = typer.Option(..., "--ratio", "-r", help="Task weights in --tasks order, e.g. 5:1:2:2 or 0.5:0.1:0.2:0.2."),
    tasks: str = typer.Option(",".join(TASK_ORDER), "--tasks", "-t",
                              help="Comma-separated tasks (default: general VQA, captioning, grounding, point VQA)."),
    within: list[str] = typer.Option([], "--within", "-w",
                                     help="Nested ratio over a task's sources, repeatable: vqa=vqav2:3,gqa:1."),
    num_samples: Optional[int] = typer.Option(None, "--num-samples", "-n", help="Length of the mix in picks."),
    epochs: Optional[int] = typer.Option(None, "--epochs", "-e",
                                         help="Make the mix just long enough for every task to have all its rows picked E times."),
    on_exhausted: str = typer.Option("repeat", "--on-exhausted", help="repeat (fresh permutation) or stop (end the mix)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the per-epoch row permutations."),
    split: str = typer.Option("train", "--split", help="Corpus split to draw from."),
    out: Path = typer.Option(..., "--out", "-o", help="Mix folder to write (mix.parquet, mix.json)."),
    warn_repeats: int = typer.Option(WARN_REPEATS, "--warn-repeats",
                                     help="Warn when a task's (or nested source's) rows are picked more than N times "
                                          "each (-1: never)."),
) -> None:
    """Write an exact, seeded ratio mix of the corpus's tasks (every prefix within one sample)."""
    from owl_data.mix.io import MixConfig, parse_ratio, parse_within, write_mix
    from owl_data.mix.spec import MixSpec
    from owl_data.mix.stats import repeat_warnings

    try:
        cfg = MixConfig(ratio=parse_ratio(ratio), tasks=tuple(t.strip() for t in tasks.split(",") if t.strip()),
                        within=parse_within(within), num_samples=num_samples, epochs=epochs,
                        on_exhausted=on_exhausted, seed=seed, split=split)
        rep = write_mix(corpus, out, cfg)
    except (ValueError, OSError) as exc:
        _fail(exc)
    t = Table(title=f"mix {rep.out}")
    for c in ("task", "weight", "rows", "sources"):
        t.add_column(c)
    for ts in rep.meta["spec"]["tasks"]:
        srcs = ", ".join(f"{s['name']}:{s['weight']} ({s['size']})" for s in ts["sources"])
        t.add_row(ts["name"], ts["weight"], str(ts["size"]), srcs)
    out_console.print(t)
    out_console.print(f"picks: {rep.length}; corpus fingerprint: {rep.meta['fingerprint']}")
    for line in repeat_warnings(MixSpec.from_dict(rep.meta["spec"]), rep.length, warn_repeats):
        console.print(f"[yellow]warning:[/] {flag_message(line)}", soft_wrap=True, highlight=False)


@app.command("mix-stats")
def mix_stats_cmd(mix: Path = typer.Argument(..., help="Mix folder (from owl-data mix).")) -> None:
    """Realised counts per task and source and the worst prefix deviation per task."""
    from owl_data.mix.stats import mix_stats

    try:
        s = mix_stats(mix)
    except (ValueError, OSError) as exc:
        _fail(exc)
    t = Table(title=f"tasks ({s.length} picks)")
    for c in ("task", "picks", "share", "target", "worst prefix deviation", "bound"):
        t.add_column(c)
    for name, n, share, target, dev, bound in s.tasks:
        t.add_row(name, str(n), f"{share:.4f}", f"{target:.1f}", f"{dev:.4f}", f"{bound:.4f}")
    out_console.print(t)
    t = Table(title="sources")
    for c in ("task", "source", "picks", "worst prefix deviation (within task)"):
        t.add_column(c)
    for task, src, n, dev in s.sources:
        t.add_row(task, src, str(n), "-" if dev is None else f"{dev:.4f}")
    out_console.print(t)
