"""``owl-data``: the command line of the data engine (thin Typer commands over the library).

Each command parses its arguments, builds a config object, calls one library function and
reports. The modules below register their commands on :data:`app` in help order; no library
module imports this package.
"""

from owl_data.cli.app import app
from owl_data.cli import build, show, mix, export  # noqa: E402,F401  (register the commands, in help order)

__all__ = ["app"]

if __name__ == "__main__":  # pragma: no cover
    app()
