"""owl_data.corpus.manifest: reading a manifest that is not one."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from owl_data.cli import app
from owl_data.corpus.manifest import read_manifest
from owl_data.corpus.schema import SchemaError


@pytest.mark.parametrize("doc", [[], "a", 3, None])
def test_a_manifest_that_is_not_an_object_is_refused_by_name(tmp_path, doc):
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match=r"manifest.json: not an Owl-VL manifest \(a JSON \w+, not an object\)"):
        read_manifest(tmp_path)


@pytest.mark.parametrize("command", ["validate", "manifest", "stats"])
def test_commands_on_such_a_manifest_end_in_one_line(tmp_path, command):
    (tmp_path / "manifest.json").write_text("[]")
    res = CliRunner().invoke(app, [command, str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert "not an Owl-VL manifest" in res.output and "Traceback" not in res.output
