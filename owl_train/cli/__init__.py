"""``owl-train``: the command line of the trainer (thin Typer commands over the library).

No library module imports this package.
"""

from owl_train.cli.app import app
from owl_train.cli import train  # noqa: E402,F401  (registers stage1, stage2, merge, zero-to-fp32, infer, eval)

__all__ = ["app"]

if __name__ == "__main__":  # pragma: no cover
    app()
