"""The model package uses transformers only in tests and benchmarks, never in library code."""

from __future__ import annotations

import ast
from pathlib import Path

MODEL = Path(__file__).resolve().parents[3] / "owl_train" / "model"


def test_model_code_never_imports_transformers():
    for f in MODEL.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] == "transformers" for n in names), f"{f.name} imports transformers"
