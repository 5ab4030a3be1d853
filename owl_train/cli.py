"""``owl-train``: the command line of the trainer (commands arrive with their issues)."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Owl-VL trainer. Commands: version (more arrive with the model and training issues).")


@app.callback()
def main() -> None:
    """Owl-VL trainer."""


@app.command()
def version() -> None:
    """Print the trainer's version."""
    from owl_train import __version__

    typer.echo(__version__)


if __name__ == "__main__":  # pragma: no cover
    app()
