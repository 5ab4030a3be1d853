"""``owl-data build``, ``stats``, ``validate`` and ``manifest`` (registered on :data:`owl_data.cli.app.app`).

Each command parses its arguments, builds a config object, calls one library function
and reports.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.markup import escape
from rich.table import Table

from owl_data.cli.app import _fail, app, console, out_console

if TYPE_CHECKING:
    from owl_data.build.driver import BuildReport, SourceSpec
    from owl_data.build.config import BuildConfig
    from owl_data.sources.synthetic.scenes import DefaultScenes


def _default_scenes(seed: int, scenes: DefaultScenes) -> list[tuple[str, str]]:
    """The embedded default in its cache folder (one folder per seed and settings), drawn once
    and renamed into place whole (:func:`~owl_data.sources.synthetic.scenes.cached_default_sources`)."""
    from owl_data.sources.synthetic.scenes import cached_default_sources

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "owl-vl" / scenes.cache_name(seed)
    return cached_default_sources(cache, seed=seed, train=scenes.train, val=scenes.val, width=scenes.width,
                                  height=scenes.height)


def _int_pair(text: Optional[str], sep: str, flag: str, example: str) -> Optional[tuple[int, int]]:
    """``"80:20"`` -> (80, 20) for a CLI flag; ranges are checked by the config."""
    if text is None:
        return None
    a, found, b = text.strip().lower().partition(sep)
    whole = re.compile(r"\s*[+-]?[0-9]+\s*")  # ASCII digits only: int() would also take "3_0" or "٣"
    try:
        if not found or not whole.fullmatch(a) or not whole.fullmatch(b):
            raise ValueError
        return int(a), int(b)  # ValueError past Python's digit limit (thousands of digits)
    except ValueError:
        raise ValueError(f"{flag} {text[:40]!r}: write two whole numbers separated by {sep!r}, e.g. {example}") from None


@app.command()
def build(
    source: list[str] = typer.Option(
        [], "--source", "-s",
        help="NAME=SPEC, repeatable: cityscapes=DIR, coco=IMAGES_DIR:ANNOTATIONS.json, drivelm=DIR, "
             "vqav2|gqa|coco_captions|flickr30k|refcoco|visual_genome|pointingqa=DIR[?key=value&...], "
             "llava|sharegpt|llava_caps_boxes=FILE_OR_DIR[?...] (see README, Input formats); every source "
             "takes ?frame=upright|raw|auto, the frame of EXIF-rotated images its annotations are in (default upright). "
             "None: the embedded default (synthetic street scenes, all four tasks)."),
    out: Path = typer.Option(..., "--out", "-o", help="Corpus folder to write (replaced atomically)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Build YAML, e.g. pipelines/build.yaml."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Build seed (overrides the config)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Worker processes (overrides the config)."),
    val_percent: Optional[int] = typer.Option(None, "--val-percent", help="Groups sent to val when a source has no split."),
    scenes: Optional[str] = typer.Option(
        None, "--scenes", help="TRAIN:VAL frames the embedded default draws (default 3:2; ignored with --source)."),
    scene_size: Optional[str] = typer.Option(
        None, "--scene-size", help="WIDTHxHEIGHT of the embedded default's frames (default 512x256; ignored with --source)."),
    executor: Optional[str] = typer.Option(
        None, "--executor", help="Where the per-scene work runs: local (default) or ray (needs pip install '.[ray]'); "
                                 "the corpus is the same."),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="With --executor ray: the cluster to join (auto, ray://host:10001); "
                                    "none starts a local Ray with --workers CPUs."),
) -> None:
    """Build a corpus from annotated sources (layout: README, "Corpus layout")."""
    try:
        overrides = {"seed": seed, "workers": workers, "val_percent": val_percent, "executor": executor,
                     "ray_address": ray_address}
        cfg, specs = _build_inputs(source, config, overrides, scenes, scene_size)
    except (ValueError, OSError) as exc:
        _fail(exc)
    report = _run_with_progress(specs, out, cfg)
    _print_report(out, report.manifest)
    t = report.timings
    if t:
        console.print(f"[dim]executor {t['executor']} with {t['workers']} worker(s): start-up {t['startup_s']:.2f} s, "
                      f"scenes {t['chunks_s']:.2f} s, then {t.get('consolidate_tail_s', 0.0):.2f} s to commit[/]",
                      highlight=False)


def _build_inputs(source: list[str], config: Optional[Path], overrides: dict[str, object],
                  scenes: Optional[str], scene_size: Optional[str]) -> tuple[BuildConfig, list[SourceSpec]]:
    """The build config (YAML + flag overrides) and the source specs; without ``--source``,
    the embedded default drawn into its cache (``--scenes``/``--scene-size`` apply to it only,
    and are checked even when ignored).

    Raises:
        ValueError: a bad config, source spec or flag value. OSError: the cache not writable.
    """
    from owl_data.build.driver import SourceSpec
    from owl_data.build.config import load_build_config

    cfg = load_build_config(config, overrides)
    counts = _int_pair(scenes, ":", "--scenes", "80:20")
    size = _int_pair(scene_size, "x", "--scene-size", "512x256")
    specs = [SourceSpec.parse(s) for s in source]
    if counts or size:
        d = cfg.default_scenes
        (tr, va), (w, h) = counts or (d.train, d.val), size or (d.width, d.height)
        flagged = dataclasses.replace(d, train=tr, val=va, width=w, height=h)  # checked even when ignored
        if not specs:  # with --source they are ignored: the config (manifest, resume key) stays as it was
            cfg = dataclasses.replace(cfg, default_scenes=flagged)
    if not specs:
        specs = [SourceSpec(n, s, synthetic=True) for n, s in _default_scenes(cfg.seed, cfg.default_scenes)]
        d = cfg.default_scenes
        console.print(f"[cyan]no --source given: building the embedded default (synthetic street scenes: "
                      f"{d.train} train and {d.val} val frames of {d.width}x{d.height})[/]")
    elif counts or size:
        console.print("[yellow]--scenes/--scene-size apply to the embedded default only: ignored with --source[/]")
    return cfg, specs


def _run_with_progress(specs: list[SourceSpec], out: Path, cfg: BuildConfig) -> BuildReport:
    """:func:`owl_data.build.driver.run_build` under a transient progress bar; errors exit."""
    from owl_data.build.driver import run_build
    from owl_data.fs import DamagedStateWarning
    from owl_data.sources import SourceError

    with Progress(SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("building (scenes)", total=None)

        def progress(stage: str, n: int) -> None:
            bar.update(task, advance=n, description=f"building ({stage})")

        try:
            with warnings.catch_warnings():  # a discarded resume state: one yellow line naming its file
                warnings.simplefilter("always", DamagedStateWarning)
                warnings.showwarning = lambda msg, *_a, **_k: console.print(
                    f"[bold yellow]warning:[/] {escape(str(msg))}", soft_wrap=True)
                return run_build(specs, out, cfg, progress=progress)
        except (SourceError, ValueError, OSError) as exc:
            _fail(exc)


def _print_report(out: Path, m: dict) -> None:
    """The sources table, a warning per source that kept nothing, row counts and the fingerprint."""
    t = Table(title=f"corpus {out}")
    for col in ("source", "items read", "kept", "rejected", "top reject reasons"):
        t.add_column(col)
    for name, s in m["sources"].items():
        top = ", ".join(f"{r}={n}" for r, n in sorted(s["rejects"].items(), key=lambda kv: -kv[1])[:3])
        t.add_row(name + (" (synthetic)" if s["synthetic"] else ""), str(s["items_read"]),
                  str(s["items_kept"]), str(s["items_rejected"]), top)
    out_console.print(t)
    for name, s in m["sources"].items():
        if s["items_kept"] == 0:
            top = max(s["rejects"].items(), key=lambda kv: kv[1])[0] if s["rejects"] else "no items found"
            hint = (" (image paths in the annotations are resolved against the root given in the spec:"
                    " check it is the folder they are relative to)" if top == "missing_image" else "")
            console.print(f"[bold yellow]warning:[/] source {name!r} kept no item of {s['items_read']}: "
                          f"mostly {top}{hint}", soft_wrap=True)
    for name, s in m["sources"].items():
        f = s.get("frames", {})
        if f.get("ambiguous"):
            console.print(f"[yellow]note:[/] source {name!r}: {f['ambiguous']} EXIF-oriented image(s) whose annotations "
                          "do not tell the raw frame from the upright one were taken as its ?frame= option says "
                          f"(default upright; frames taken: upright {f['upright']}, raw {f['raw']})", soft_wrap=True)
    rows = ", ".join(f"{task}: {sum(c.values())}" for task, c in m["rows"].items() if task not in ("images", "image_refs"))
    out_console.print(f"images: {m['rows'].get('images', {}).get('all', 0)}; rows: {rows}")
    out_console.print(f"fingerprint: {m['fingerprint']}")


@app.command()
def stats(corpus: Path = typer.Argument(..., help="Corpus folder.")) -> None:
    """Rows per task, split, source and category; rejects per reason (DuckDB); the layout prior."""
    from owl_data.corpus.stats import corpus_stats

    try:
        s = corpus_stats(corpus)
    except (FileNotFoundError, OSError, ValueError) as exc:
        _fail(exc)
    for name, cols in (("rows", ("task", "split", "source", "rows")),
                       ("categories", ("category", "rows", "targets")),
                       ("kinds", ("kind", "no question", "rows")),
                       ("rejects", ("source", "reason", "items"))):
        t = Table(title=name)
        for c in cols:
            t.add_column(c)
        for r in s[name]:
            t.add_row(*(str(v) for v in r))
        out_console.print(t)
    for lp in s.get("layout_prior", []):
        out_console.print(_layout_prior_line(lp), highlight=False, soft_wrap=True)


def _layout_prior_line(lp) -> str:
    """One line: how much of the val categories (x, y) alone predicts (owl_data.corpus.stats.LayoutPriorStats)."""
    head = f"layout prior ({lp.k}-NN from the point's (x, y), no image; fit on {lp.train_points} train points)"
    if lp.accuracy is None:
        why = "no train description points" if not lp.train_points else "no val description points"
        return f"{head}: not computed ({why})"
    return (f"{head}: {lp.accuracy:.1%} of {lp.val_points} val points; majority class {lp.majority!r}: "
            f"{lp.majority_accuracy:.1%} (a model's point hit rate near the prior may not look at the image)")


@app.command()
def validate(corpus: Path = typer.Argument(..., help="Corpus folder.")) -> None:
    """Check schemas and invariants; exit 1 on any problem."""
    from owl_data.corpus.validate import validate_corpus

    try:
        rep = validate_corpus(corpus)
    except (FileNotFoundError, ValueError) as exc:
        _fail(exc)
    for note in rep.notes:
        console.print(f"[yellow]note:[/] {note}", soft_wrap=True)
    if rep.ok:
        out_console.print(f"[green]valid[/]: {rep.checked_rows} task rows checked")
        return
    for p in rep.problems:
        out_console.print(f"[red]-[/] {p}")
    raise typer.Exit(code=1)


@app.command()
def manifest(corpus: Path = typer.Argument(..., help="Corpus folder.")) -> None:
    """Print the corpus manifest (JSON)."""
    from owl_data.corpus.writer import read_manifest

    try:
        out_console.print_json(json.dumps(read_manifest(corpus)))
    except (FileNotFoundError, ValueError) as exc:
        _fail(exc)

