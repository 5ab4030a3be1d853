"""What the project publishes: the corpus JSON schema matches the code; only owl_data and owl_train install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from owl_data.corpus.schema import SCHEMA_VERSION, schema_document

ROOT = Path(__file__).resolve().parents[2]


def test_the_published_schema_is_the_code_schema():
    published = ROOT / "schemas" / f"owl-corpus-{SCHEMA_VERSION}.json"
    assert published.is_file(), f"{published} missing: regenerate it from owl_data.corpus.schema"
    assert json.loads(published.read_text()) == schema_document()


def test_schemas_is_data_not_an_installed_package(tmp_path):
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert find["include"] == ["owl_data*", "owl_train*"]
    assert not (ROOT / "schemas" / "__init__.py").exists()
    # the installed environment, outside the repo (whose root pytest puts on sys.path): owl_data is
    # importable, a top-level ``schemas`` is not
    probe = ("import importlib.util as u; print(u.find_spec('schemas') is None, "
             "u.find_spec('owl_data') is not None)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60)
    assert res.stdout.split() == ["True", "True"], res.stdout + res.stderr
