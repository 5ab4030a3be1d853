"""The ``owl-data`` Typer app, its consoles, the field -> flag table and the one error exit.

The commands live beside this file (build, show, mix, export) and register on :data:`app`;
``owl_data.cli`` imports them in help order. No library module imports the CLI.

Library errors name config fields, never flags (:class:`owl_data.errors.FieldError`); the
error exit shows them in the CLI's words through :data:`FLAGS` (:func:`flag_message`).
"""

from __future__ import annotations

import re

import typer
from rich.console import Console

from owl_data.errors import FieldError

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
    "seed": "--seed",
    "format": "--format",
    "coords": "--coords",
    "limit": "--limit",
    "where": "--where",
    "repo": "--repo",
    "out": "--out",
}
_QUOTED = re.compile(r"`(%s)`" % "|".join(map(re.escape, FLAGS)))


def flag_message(exc: BaseException) -> str:
    """``str(exc)`` in the CLI's words: for a :class:`FieldError`, its leading field name and
    every other field it names in backquotes (```tasks```) become their flags from :data:`FLAGS`;
    any other error is unchanged.

    >>> flag_message(FieldError("tasks", "tasks: unknown task(s) x; tasks: vqa"))
    '--tasks: unknown task(s) x; tasks: vqa'
    >>> flag_message(FieldError("num_samples", "num_samples and `epochs` both set; give one"))
    '--num-samples and --epochs both set; give one'
    """
    msg = str(exc)
    if not isinstance(exc, FieldError):
        return msg
    flag = FLAGS.get(exc.field)
    if flag is not None and msg.startswith(exc.field):
        msg = flag + msg[len(exc.field):]
    return _QUOTED.sub(lambda m: FLAGS[m.group(1)], msg)


def _fail(msg: str | BaseException) -> None:
    """Print one red ``error:`` line and exit with status 2 (an exception: :func:`flag_message`)."""
    text = msg if isinstance(msg, str) else flag_message(msg)
    console.print(f"[bold red]error:[/] {text}", soft_wrap=True)
    raise typer.Exit(code=2)
