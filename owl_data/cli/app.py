"""The ``owl-data`` Typer app, its consoles and the one error exit the commands share.

The commands live beside this file (build, show, mix, export) and register on :data:`app`;
``owl_data.cli`` imports them in help order. No library module imports the CLI.
"""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Owl-VL data engine: build, inspect and validate point-guided VQA corpora.")
console = Console(stderr=True)
out_console = Console()


def _fail(msg: str) -> None:
    console.print(f"[bold red]error:[/] {msg}", soft_wrap=True)
    raise typer.Exit(code=2)
