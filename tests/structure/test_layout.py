"""Project structure: the import graph, shipped configs, console scripts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("pkg", ["owl_data", "owl_train"])
def test_library_never_imports_cli_or_pipelines(pkg):
    for f in (ROOT / pkg).rglob("*.py"):
        if f.name == "cli.py" or f.name.startswith("cli_"):
            continue  # the command-line layer
        bad = {m for m in _imports(f) if m.endswith(".cli") or m == "cli" or m.startswith("pipelines")}
        assert not bad, f"{f.relative_to(ROOT)} imports {bad}"


def test_data_flows_one_way():
    # sources and geometry never import the build driver, the writer or the generators
    lower = ["owl_data/records.py", "owl_data/geometry.py", "owl_data/images.py", "owl_data/points.py",
             *[str(p.relative_to(ROOT)) for p in (ROOT / "owl_data" / "sources").glob("*.py")]]
    upper = {"owl_data.build", "owl_data.corpus", "owl_data.generators", "owl_data.validate", "owl_data.stats"}
    for rel in lower:
        bad = {m for m in _imports(ROOT / rel) if any(m == u or m.startswith(u + ".") for u in upper)}
        assert not bad, f"{rel} imports {bad}"


def test_every_pipeline_config_loads():
    from owl_data.config import load_build_config

    files = sorted((ROOT / "pipelines").glob("*.yaml"))
    assert files
    for f in files:
        data = yaml.safe_load(f.read_text())
        if "build" in data:
            cfg = load_build_config(f)
            assert cfg.points.points_per_instance >= 1
        if "train" in data:
            from owl_train.config import load_train_config

            assert load_train_config(f).stage in ("stage1", "stage2")


def test_unknown_config_key_is_named(tmp_path):
    from owl_data.config import load_build_config

    p = tmp_path / "b.yaml"
    p.write_text("build:\n  sed: 3\n")
    with pytest.raises(ValueError, match="sed"):
        load_build_config(p)
