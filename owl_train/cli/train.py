"""``owl-train stage1|stage2|merge|zero-to-fp32|infer|eval`` (registered on :data:`owl_train.cli.app.app`).

Each command parses, builds a config, calls one library function and reports; errors are one
red line on stderr and exit status 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from owl_data.corpus.schema import TASK_ORDER
from owl_train.cli.app import FLAGS, STAGE2_FLAGS, RichProgress, app, fail, note, out

_CONFIG = typer.Option(None, "--config", "-c", help="Training YAML (pipelines/stage1.yaml, pipelines/stage2.yaml).")
_SET = typer.Option([], "--set", "-s", help="Override any config field: key=value (value read as YAML), repeatable.")
_CORPUS = typer.Option(None, "--corpus", help="Corpus folder.")
_OUT = typer.Option(None, "--out", "-o", help="Run folder: model/, checkpoints/, logs/.")
_RESUME = typer.Option(None, "--resume", help="'latest' or a checkpoint folder.")
_DEEPSPEED = typer.Option(None, "--deepspeed", help="DeepSpeed JSON, e.g. pipelines/zero2.json.")


def _train(stage: str, config: Optional[Path], sets: list[str], flags: dict) -> None:
    """Build the stage's config (YAML, then ``--set``, then the flags), run the stage, report."""
    from owl_train.stages.config import load_train_config, parse_overrides

    words = STAGE2_FLAGS if stage == "stage2" else FLAGS
    if config is not None and not config.is_file():
        fail(f"--config {config}: " + ("is a folder; name a training YAML file" if config.is_dir() else
                                       f"no such file; give a training YAML such as pipelines/{stage}.yaml"))
    try:
        cfg = load_train_config(config, flags, sets=parse_overrides(sets), stage=stage, out=f"runs/{stage}")
        if cfg.stage != stage:
            raise ValueError(f"train config field stage={cfg.stage!r} is invalid for owl-train {stage}: "
                             f"use a {stage} YAML or --set stage={stage}")
        if stage == "stage1":
            from owl_train.stages.stage1 import run_stage1 as run
        else:
            from owl_train.stages.stage2 import run_stage2 as run
        res = run(cfg, note=lambda m: note(m, words), progress=RichProgress())
    except (ValueError, OSError, ImportError) as exc:
        fail(exc, words)
    last = f"{res.losses[-1]:.4f}" if res.losses else "-"
    out.print(f"{stage}: {res.steps} steps, last loss {last}, {res.samples_per_s:.1f} samples/s; "
              f"rows per task {dict(res.task_counts)}" + (f"; dropped {dict(res.dropped)}" if res.dropped else ""))
    if res.model_dir is not None:
        out.print(f"model: {res.model_dir}")
    else:
        out.print(f"stopped at step {res.steps}; resume with --resume latest")


def _stage_command(stage: str, model_flag: str, model_help: str, mix_help: str, max_steps_help: str,
                   doc: str) -> None:
    """Register ``owl-train STAGE``: the options both stages take (the init model under ``model_flag``)."""
    def command(
        config: Optional[Path] = _CONFIG,
        sets: list[str] = _SET,
        model: Optional[str] = typer.Option(None, *model_flag.split(","), help=model_help),
        corpus: Optional[str] = _CORPUS,
        mix: Optional[str] = typer.Option(None, "--mix", help=mix_help),
        out_dir: Optional[str] = _OUT,
        max_steps: Optional[int] = typer.Option(None, "--max-steps", help=max_steps_help),
        resume: Optional[str] = _RESUME,
        deepspeed: Optional[str] = _DEEPSPEED,
    ) -> None:
        _train(stage, config, sets, {"model": model, "corpus": corpus, "mix": mix, "out": out_dir,
                                     "max_steps": max_steps, "resume": resume, "deepspeed": deepspeed})

    command.__doc__ = doc
    command.__name__ = stage
    app.command(stage)(command)


_stage_command("stage1", "--model,-m", "Initial model folder (HF layout + tokenizer).", "Mix folder (owl-data mix).",
               "Optimizer steps (0: one pass over the mix).",
               "Stage 1: continued pretraining on the mix (vision frozen; projector + LM, full or LoRA).")
_stage_command("stage2", "--init", "The stage-1 model (or run) folder.",
               "Mix folder; default: built from the corpus's point_vqa rows.", "Optimizer steps (0: one pass).",
               "Stage 2: P-tuning (only a prompt encoder trains) on the no-question descriptions.")


@app.command("merge")
def merge_cmd(
    model: str = typer.Option(..., "--model", "-m", help="Model (or run) folder with a LoRA adapter."),
    out_dir: str = typer.Option(..., "--out", "-o", help="Folder for the merged model (HF layout)."),
) -> None:
    """Fold a LoRA adapter into its base weights; write a plain HF-layout model folder."""
    from owl_train.stages.checkpoints import merge

    try:
        path = merge(model, out_dir)
    except (ValueError, OSError) as exc:
        fail(exc)
    out.print(f"merged model: {path}")


@app.command("zero-to-fp32")
def zero_to_fp32_cmd(
    checkpoint: str = typer.Argument(..., help="A run's checkpoints/ folder (its latest tag) or one tag folder."),
    out_dir: str = typer.Option(..., "--out", "-o", help="Folder for the fp32 model (HF layout)."),
    tag: Optional[str] = typer.Option(None, "--tag", help="Checkpoint tag (default: the 'latest' file's)."),
) -> None:
    """Consolidate a DeepSpeed ZeRO checkpoint into an fp32 model folder (tied weights kept)."""
    from owl_train.stages.checkpoints import zero_to_fp32

    try:
        path = zero_to_fp32(checkpoint, out_dir, tag=tag)
    except (ValueError, OSError, ImportError) as exc:
        fail(exc)
    out.print(f"fp32 model: {path}")


def _image_budget(budget: dict, max_pixels: Optional[int]) -> dict:
    """The model's trained image budget with ``--max-pixels`` over it (checked here, so the error
    names the flag, not the ``min_pixels`` derived from it)."""
    if max_pixels is None:
        return budget
    if max_pixels < 28 * 28:
        raise ValueError(f"--max-pixels {max_pixels}: give at least 28*28 = 784 pixels (one image token)")
    return {**budget, "max_pixels": max_pixels, "min_pixels": min(budget.get("min_pixels", 56 * 56), max_pixels)}


@app.command("infer")
def infer_cmd(
    model: str = typer.Option(..., "--model", "-m", help="Model (or run) folder."),
    image: Optional[Path] = typer.Option(None, "--image", "-i", help="Image file (or --corpus with --pick)."),
    point: list[str] = typer.Option([], "--point", "-p", help="X,Y (normalised, or pixels with --pixels); repeatable."),
    question: Optional[str] = typer.Option(None, "--question", "-q",
                                           help="Question text only (no placeholders); none: the stage-2 virtual tokens describe the object."),
    pixels: bool = typer.Option(False, "--pixels", help="Points are pixel coordinates of the image file."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Pick the image and points from this corpus's annotations (with --pick)."),
    pick: int = typer.Option(0, "--pick", help="With --corpus: N points on N different annotated categories of one image; "
                                                "prints each answer beside the true category."),
    split: str = typer.Option("val", "--split", help="With --pick: the corpus split to pick from."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", help="Longest answer in tokens."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels",
                                             help="Image budget (one token per 28x28 px); default: the budget the model was trained with."),
) -> None:
    """Answer about the point(s) in IMAGE; prints one answer per point.

    With ``--corpus C --pick N`` the image and points come from C's annotations, and each answer is
    printed beside the point's true category with ``match`` or ``MISMATCH``.
    """
    from owl_train.infer import InferConfig, answer_picked, infer, trained_image_budget

    if corpus is not None and pick <= 0:
        fail(f"--pick {pick}: give a positive number of points to pick from --corpus")
    if (corpus is None) != (pick == 0):
        fail("give --corpus and --pick together (or neither, with --image and --point)")
    if corpus is None and (image is None or not point):
        fail("give --image and at least one --point (or --corpus C --pick N)")
    if corpus is not None and (image is not None or point):
        fail("--corpus/--pick choose the image and points themselves: drop --image/--point")
    if pick < 0:
        fail(f"--pick {pick}: give a positive number of points")
    if image is not None and not image.is_file():
        fail(f"--image {image}: " + ("is a folder; name an image file" if image.is_dir() else "no such file"))
    try:
        budget = _image_budget(trained_image_budget(model), max_pixels)
        cfg = InferConfig(**budget, max_new_tokens=max_new_tokens)
        if corpus is not None:
            picked = answer_picked(model, corpus, split, pick, cfg, question)
        else:
            res = infer(model, image, point, question, pixels, cfg)
    except (ValueError, OSError) as exc:
        fail(exc)
    if corpus is not None:
        for p, ans, ok in picked:
            ans = ans or "(empty answer)"
            out.print(f"({p.x:.3f}, {p.y:.3f}) true: {p.category:<14} {'match' if ok else 'MISMATCH':<8} answer: {ans}",
                      highlight=False, markup=False, soft_wrap=True)
        out.print(f"image {picked[0][0].image_id[:12]} of split {split!r}; {sum(ok for _, _, ok in picked)} of "
                  f"{len(picked)} answers name their point's category", highlight=False, markup=False)
        return
    for (x, y), ans in res:
        ans = ans or "(empty answer: the model ended its turn at once)"
        if len(res) > 1:
            out.print(f"({x:.3f}, {y:.3f}): {ans}", highlight=False, markup=False)
        else:
            out.print(ans, highlight=False, markup=False)


@app.command("eval")
def eval_cmd(
    model: str = typer.Option(..., "--model", "-m", help="Model (or run) folder."),
    corpus: Path = typer.Argument(..., help="Corpus folder."),
    split: str = typer.Option("val", "--split", help="Corpus split to evaluate on."),
    limit: int = typer.Option(64, "--limit", help="Rows per task (0: all)."),
    tasks: str = typer.Option(",".join(TASK_ORDER), "--tasks", help="Comma-separated tasks."),
    batch_size: int = typer.Option(8, "--batch-size", help="Rows generated together."),
    max_new_tokens: int = typer.Option(48, "--max-new-tokens", help="Longest answer in tokens."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels",
                                             help="Image budget (one token per 28x28 px); default: the budget the model was trained with."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON."),
    controls: bool = typer.Option(True, "--controls/--no-controls",
                                  help="point_vqa: also run the point-swap, image-swap and blank-image controls "
                                       "(about 3x the point_vqa generation)."),
) -> None:
    """Per-task metrics: VQA accuracy, BLEU-4/CIDEr, grounding acc@0.5, point hit rate with its controls."""
    from owl_train.eval.evaluate import EvalConfig, evaluate
    from owl_train.infer import trained_image_budget

    if json_out is not None and (json_out.is_dir() or not json_out.parent.is_dir()):
        fail(f"--json {json_out}: " + ("is a folder; name a file" if json_out.is_dir()
                                        else f"its folder {json_out.parent} does not exist"))
    try:
        budget = _image_budget(trained_image_budget(model), max_pixels)
        cfg = EvalConfig(split=split, limit=limit, tasks=tuple(t.strip() for t in tasks.split(",") if t.strip()),
                         batch_size=batch_size, max_new_tokens=max_new_tokens, controls=controls, **budget)
        rep = evaluate(model, corpus, cfg, progress=note)
    except (ValueError, OSError) as exc:
        fail(exc)
    t = Table(title=f"eval on {corpus} ({split})")
    for c in ("task", "rows", "metric", "value", "n"):
        t.add_column(c)
    for task, m in rep.metrics.items():
        first = True
        for k, v in m.items():
            if k in ("rows", "answered", "n", "tokenizer", "descriptions", "controls") or k.endswith("_n"):
                continue
            n = m.get(f"{k}_n", m.get("descriptions") if k.startswith("description_") else None)
            value = "-" if v is None else str(v) if isinstance(v, int) else f"{v:.4f}"
            t.add_row(task if first else "", f"{m['answered']}/{m['rows']}" if first else "", k, value,
                      "" if n is None else str(n))
            first = False
    out.print(t)
    for n in rep.notes:
        note(n)
    if json_out is not None:
        try:
            json_out.write_text(json.dumps({"split": rep.split, "metrics": rep.metrics, "notes": rep.notes,
                                            "examples": rep.examples}, indent=2) + "\n")
        except OSError as exc:
            fail(f"--json {json_out}: cannot write it ({exc.strerror or exc})")
