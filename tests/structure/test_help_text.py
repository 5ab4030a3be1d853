"""Every command's ``--help`` of both CLIs names its arguments as the README does (``CORPUS``,
never ``{corpus}``) and shows no type placeholder on a flag that takes no value (``--private``,
never ``--private <bool>``)."""

from __future__ import annotations

import re

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from owl_data.cli.app import app as data_app
from owl_train.cli.app import app as train_app

runner = CliRunner()


def _commands(app, prog: str) -> list[tuple[str, list[str]]]:
    group = get_command(app)
    return [(f"{prog} {name}", [name]) for name in sorted(group.commands)]


CASES = _commands(data_app, "owl-data") + _commands(train_app, "owl-train")


@pytest.mark.parametrize("app, name, args", [(data_app if n.startswith("owl-data") else train_app, n, a)
                                             for n, a in CASES], ids=[n for n, _ in CASES])
def test_help_names_arguments_in_capitals_and_flags_without_a_type(app, name, args):
    res = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert res.exit_code == 0, res.output
    usage = next(line for line in res.output.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage
    assert re.search(r"<(bool|str|int|path|float)>", res.output) is None, res.output
    for word in usage.split("[OPTIONS]", 1)[-1].split():
        assert word.strip("[].") == word.strip("[].").upper(), usage  # arguments are CAPITALS, as in the README
