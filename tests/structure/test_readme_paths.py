"""Every Python path the README names (``owl_data.…`` / ``owl_train.…``) imports from where it says."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOTTED = re.compile(r"\b(owl_(?:data|train)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _readme_paths() -> list[str]:
    return sorted(set(DOTTED.findall((ROOT / "README.md").read_text())))


def _resolve(path: str) -> object:
    """The module or attribute ``path`` names: the longest importable module prefix, then attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)  # AttributeError: the README names something that is not there
        return obj
    raise ModuleNotFoundError(path)


def test_readme_names_python_paths():
    assert len(_readme_paths()) >= 5  # the README documents its Python entry points by path


@pytest.mark.parametrize("path", _readme_paths())
def test_readme_python_path_resolves(path):
    _resolve(path)


def test_resolver_rejects_a_missing_name():
    with pytest.raises((AttributeError, ModuleNotFoundError)):
        _resolve("owl_data.corpus.writer.no_such_function")
    with pytest.raises((AttributeError, ModuleNotFoundError)):
        _resolve("owl_data.scene")  # the pre-refactor flat module path


FILES = re.compile(r"\b((?:owl_data|owl_train|pipelines|benchmarks|schemas)/[\w./-]*\w)")


def test_readme_file_paths_exist():
    named = sorted(set(FILES.findall((ROOT / "README.md").read_text())))
    assert named  # the README points at files
    missing = [p for p in named if not (ROOT / p).exists()]
    assert not missing, f"README names files that are not there: {missing}"
