"""The ``owl-train`` Typer app with its ``version`` and ``init-tiny`` commands, its consoles, the
field -> flag table, the one error exit and the training progress bar; the stage, eval and infer
commands register on :data:`app` from :mod:`owl_train.cli.train`.

Library errors name config fields, never flags (:class:`owl_data.errors.FieldError`); the error
exit and the notes show them in the CLI's words through :data:`FLAGS` (:func:`flag_message`).
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from owl_data import errors
from owl_data.errors import FieldError  # noqa: F401  (the doctests build one)
from owl_train.model.variants import DEFAULT_VARIANT

__all__ = ["app", "err", "out", "FLAGS", "STAGE2_FLAGS", "flag_message", "fail", "note", "RichProgress"]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Owl-VL trainer: a compact M-RoPE vision-language model with a point token, and its training stages.")
err = Console(stderr=True)
out = Console()

# config field (of TrainConfig, and ``sets`` of load_train_config) -> the flag that sets it
FLAGS: dict[str, str] = {
    "model": "--model",
    "corpus": "--corpus",
    "mix": "--mix",
    "out": "--out",
    "max_steps": "--max-steps",
    "resume": "--resume",
    "deepspeed": "--deepspeed",
    "sets": "--set",
}
# owl-train stage2 names the init model --init
STAGE2_FLAGS: dict[str, str] = {**FLAGS, "model": "--init"}


def flag_message(msg: str | BaseException, flags: dict[str, str] = FLAGS) -> str:
    """``msg`` (an error or a note) in the CLI's words: :func:`owl_data.errors.flag_message` with
    this CLI's table.

    >>> flag_message(FieldError("out", "out runs/a is a file; name a folder for the run"))
    '--out runs/a is a file; name a folder for the run'
    >>> flag_message("`resume` latest: no checkpoint in runs/a/checkpoints")
    '--resume latest: no checkpoint in runs/a/checkpoints'
    """
    return errors.flag_message(msg, flags)


def fail(msg: str | BaseException, flags: dict[str, str] = FLAGS) -> NoReturn:
    """Print one red ``error:`` line (in the CLI's words, :func:`flag_message`) and exit with status 2."""
    err.print(f"[bold red]error:[/] {flag_message(msg, flags)}", soft_wrap=True, markup=True, highlight=False)
    raise typer.Exit(code=2)


def note(msg: str, flags: dict[str, str] = FLAGS) -> None:
    """Print one dim line on stderr (in the CLI's words)."""
    err.print(f"[dim]{flag_message(msg, flags)}[/]", soft_wrap=True, highlight=False)


class RichProgress:
    """The stages' progress bar on stderr: steps done of the run's, loss, samples/s, elapsed, left
    (:class:`owl_train.stages.loop.Progress`)."""

    def __init__(self) -> None:
        self._bar: Progress | None = None
        self._task = None

    def open(self, desc: str, total: int, done: int) -> None:
        self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[sps]} samples/s"),
                             TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                             transient=False)
        self._task = self._bar.add_task(desc, total=total, completed=done, loss="-", sps="-")
        self._bar.start()

    def update(self, step: int, loss: float, samples_per_s: float) -> None:
        self._bar.update(self._task, completed=step, loss=f"{loss:.4f}", sps=f"{samples_per_s:.1f}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


@app.callback()
def main(
    local_rank: int = typer.Option(None, "--local_rank", "--local-rank", hidden=True,
                                   help="Set by the deepspeed launcher (its processes read LOCAL_RANK)."),
) -> None:
    """Owl-VL trainer."""


@app.command()
def version() -> None:
    """Print the trainer's version."""
    from owl_train import __version__

    typer.echo(__version__)


@app.command("init-tiny")
def init_tiny_cmd(
    out_dir: str = typer.Argument(..., help="directory to write (Hugging Face Qwen2-VL layout + tokenizer)"),
    vocab_from: str = typer.Option(None, "--vocab-from", help="UTF-8 text file to train the BPE tokenizer on"),
    seed: int = typer.Option(0, "--seed", help="seed of the random weights (0 or more)"),
    force: bool = typer.Option(False, "--force", help="write into a non-empty OUT_DIR (replacing its model files)"),
    variant: str = typer.Option(None, "--variant", help="point-grounding preset (owl_train.model.variants.VARIANTS: "
                                "a_text, b_image, c_interleaved, d_focus, e_fovea, f_patch_code, cd, cdf, cdef, ...); "
                                f"default: {DEFAULT_VARIANT}"),
) -> None:
    """Write a tiny random Owl-VL model and its byte-level BPE tokenizer to OUT_DIR."""
    from owl_train.model.tiny import init_tiny
    from owl_train.model.variants import DEFAULT_VARIANT, VARIANTS

    variant = DEFAULT_VARIANT if variant is None else variant  # an empty --variant "" is an error, not the default
    if seed < 0:
        fail(f"--seed {seed}: give a seed of 0 or more (torch seeds are unsigned)")
    if vocab_from is not None and not Path(vocab_from).is_file():
        fail(f"--vocab-from {vocab_from}: no such file; give a UTF-8 text file to train the tokenizer on "
             "(or leave it out for the built-in text)")
    if variant not in VARIANTS:
        typer.secho(f"error: unknown --variant {variant!r}: use one of {', '.join(VARIANTS)}", fg="red", err=True)
        raise typer.Exit(code=2)

    target = Path(out_dir)
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not force)):
        typer.secho(f"error: {target} exists and is not an empty folder; pick a new folder "
                    "(or pass --force to overwrite its model files)", fg="red", err=True)
        raise typer.Exit(code=2)
    try:
        path = init_tiny(out_dir, vocab_from=vocab_from, seed=seed, variant=variant)
    except (ValueError, OSError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(code=2)
    typer.echo(f"wrote tiny Owl-VL model ({variant}) and tokenizer to {path}")
