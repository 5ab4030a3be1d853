"""The `owl-train` command line."""

from __future__ import annotations

from typer.testing import CliRunner

from owl_train import __version__
from owl_train.cli import app


def test_version_is_a_subcommand():
    res = CliRunner().invoke(app, ["version"])
    assert res.exit_code == 0 and res.output.strip() == __version__
