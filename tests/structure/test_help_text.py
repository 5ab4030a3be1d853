"""Every command's ``--help`` of both CLIs names its arguments as the README does (``CORPUS``,
never ``{corpus}``) and shows no type placeholder on a flag that takes no value (``--private``,
never ``--private <bool>``)."""

from __future__ import annotations

import re
from pathlib import Path

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


README = Path(__file__).resolve().parents[2] / "README.md"


def _section(prog: str, name: str) -> str:
    """The README text of the ``###`` section whose heading names the command (``owl-data NAME`` or
    a backquoted ``NAME`` on an ``owl-train`` heading), up to the next heading of level 2 or 3."""
    text = README.read_text(encoding="utf-8")
    heads = [m for m in re.finditer(r"^###? .*$", text, re.M)]
    for i, m in enumerate(heads):
        head = m.group(0)
        if f"`{prog} {name}`" in head or f"`{prog} {name} " in head or (
                prog.split("-")[1] in head and f"`{name}`" in head and head.startswith("###")):
            end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
            return text[m.start():end]
    raise AssertionError(f"README has no section for {prog} {name}")


def _flags(app, name: str) -> list[str]:
    cmd = get_command(app).commands[name]
    return sorted({o for p in cmd.params if not getattr(p, "hidden", False)
                   for o in [*p.opts, *p.secondary_opts] if o.startswith("--") and o != "--help"})


@pytest.mark.parametrize("app, name, args", [(data_app if n.startswith("owl-data") else train_app, n, a)
                                             for n, a in CASES], ids=[n for n, _ in CASES])
def test_readme_names_every_flag_of_the_command_in_its_section(app, name, args):
    prog = name.split()[0]
    section = _section(prog, args[0])
    missing = [f for f in _flags(app, args[0]) if not re.search(re.escape(f) + r"(?![\w-])", section)]
    assert not missing, f"README's section for {name} does not name {missing}"
