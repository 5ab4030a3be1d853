"""The ``owl-data`` Typer app, its consoles, the field -> flag table and the one error exit.

The commands live beside this file (build, show, mix, export) and register on :data:`app`;
``owl_data.cli`` imports them in help order. No library module imports the CLI.

Library errors name config fields, never flags (:class:`owl_data.errors.FieldError`); the
error exit shows them in the CLI's words through :data:`FLAGS` (:func:`flag_message`).
"""

from __future__ import annotations

import typer
from rich.console import Console

from owl_data import errors

__all__ = ["app", "console", "out_console", "FLAGS", "flag_message"]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Owl-VL data engine: build, inspect and validate point-guided VQA corpora.")
console = Console(stderr=True)
out_console = Console()

# config field (of BuildConfig / SourceSpec, MixConfig, GalleryConfig, the export and output
# arguments) -> the flag that sets it
FLAGS: dict[str, str] = {
    "sources": "--source",
    "tasks": "--tasks",
    "ratio": "--ratio",
    "within": "--within",
    "num_samples": "--num-samples",
    "epochs": "--epochs",
    "on_exhausted": "--on-exhausted",
    "warn_repeats": "--warn-repeats",
    "seed": "--seed",
    "workers": "--workers",
    "executor": "--executor",
    "ray_address": "--ray-address",
    "format": "--format",
    "coords": "--coords",
    "limit": "--limit",
    "where": "--where",
    "repo": "--repo",
    "out": "--out",
    "overwrite": "--overwrite",
}


def flag_message(msg: str | BaseException) -> str:
    """``msg`` in ``owl-data``'s words (:func:`owl_data.errors.flag_message` with :data:`FLAGS`):
    a :class:`~owl_data.errors.FieldError`'s leading field name and the fields it names in backquotes become flags.

    >>> flag_message(errors.FieldError("tasks", "tasks: unknown task(s) x; tasks: vqa"))
    '--tasks: unknown task(s) x; tasks: vqa'
    >>> flag_message(errors.FieldError("num_samples", "num_samples and `epochs` both set; give one"))
    '--num-samples and --epochs both set; give one'
    """
    return errors.flag_message(msg, FLAGS)


def _fail(msg: str | BaseException) -> None:
    """Print one red ``error:`` line (:func:`flag_message`) and exit with status 2."""
    console.print(f"[bold red]error:[/] {flag_message(msg)}", soft_wrap=True)
    raise typer.Exit(code=2)
