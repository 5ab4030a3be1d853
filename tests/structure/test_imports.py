"""The layering contracts (pyproject.toml ``[tool.importlinter]``) hold, and they do catch a violation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    """``lint-imports --no-cache`` run in ``cwd`` on the packages there (cwd first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_contracts_are_kept():
    res = _lint_imports(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


@pytest.mark.parametrize("module,line,expect", [
    ("owl_data/ingest/numbers.py", "import owl_data.cli",
     ["owl_data: stages import only the stages below them BROKEN",
      "owl_data.ingest is not allowed to import owl_data.cli",
      "owl_data.ingest.numbers -> owl_data.cli (l.1)"]),
    ("owl_data/records.py", "import torch",
     ["the data engine never imports the trainer or torch BROKEN",
      "owl_data is not allowed to import torch", "owl_data.records -> torch (l.1)"]),
    ("owl_train/eval/metrics.py", "import owl_train.stages.loop",
     ["eval and infer answer through the model runner, never the training loop BROKEN",
      "owl_train.eval.metrics -> owl_train.stages.loop (l.1)"]),
])
def test_one_injected_import_breaks_the_contract_that_names_it(tmp_path, module, line, expect):
    for name in ("owl_data", "owl_train"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert _lint_imports(tmp_path).returncode == 0  # the copy alone keeps every contract
    target = tmp_path / module
    target.write_text(f"{line}  # injected upward import\n" + target.read_text())
    res = _lint_imports(tmp_path)
    assert res.returncode != 0, res.stdout
    for text in expect:
        assert text in res.stdout, res.stdout
    assert "3 kept, 1 broken" in res.stdout
