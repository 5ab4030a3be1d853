"""Size limits of the packages (STYLE.md): modules of at most 400 lines (a model file under
owl_train/model may have 401), functions of at most 60 lines counted from ``def`` to the end minus the
docstring, unless the docstring says why with a sentence starting "Long because"."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 400
MAX_MODEL_MODULE_LINES = 401
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted([*ROOT.glob("owl_data/**/*.py"), *ROOT.glob("owl_train/**/*.py")])


def _module_limit(path: Path) -> int:
    rel = path.relative_to(ROOT).as_posix()
    return MAX_MODEL_MODULE_LINES if rel.startswith("owl_train/model/") else MAX_MODULE_LINES


def function_lengths(source: str) -> list[tuple[str, int, int, str]]:
    """(name, first line, length, docstring) of every function and method in ``source``; the length runs
    from ``def`` (decorators excluded) to the last line, minus the docstring's lines."""
    out = []
    for n in ast.walk(ast.parse(source)):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = n.end_lineno - n.lineno + 1
            doc = ""
            first = n.body[0] if n.body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                length -= first.end_lineno - first.lineno + 1
                doc = first.value.value
            out.append((n.name, n.lineno, length, doc))
    return out


def test_function_lengths_are_counted_without_the_docstring():
    src = 'def f():\n    """Doc\n\n    more."""\n    a = 1\n    return a\n\n\ndef g(): return 2\n'
    assert [(name, line, length) for name, line, length, _ in function_lengths(src)] == [("f", 1, 3), ("g", 9, 1)]


def test_no_module_over_the_limit():
    long = [f"{p.relative_to(ROOT)}: {n} lines (limit {_module_limit(p)})"
            for p in _modules() if (n := len(p.read_text().splitlines())) > _module_limit(p)]
    assert not long, "modules over the limit:\n" + "\n".join(long)


def test_no_function_over_60_lines_unless_it_says_why():
    long = [f"{p.relative_to(ROOT)}:{line} {name}: {length} lines"
            for p in _modules() for name, line, length, doc in function_lengths(p.read_text())
            if length > MAX_FUNCTION_LINES and "Long because" not in doc]
    assert not long, "functions over 60 lines (without 'Long because' in the docstring):\n" + "\n".join(long)
