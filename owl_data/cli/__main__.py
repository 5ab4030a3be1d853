"""``python -m owl_data.cli``: the same as the ``owl-data`` command."""

from owl_data.cli import app

app()
