"""Project structure: shipped configs load, unknown config keys are named (the import graph: test_imports.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_every_pipeline_config_loads():
    from owl_data.build.config import load_build_config

    files = sorted((ROOT / "pipelines").glob("*.yaml"))
    assert files
    for f in files:
        data = yaml.safe_load(f.read_text())
        if "build" in data:
            cfg = load_build_config(f)
            assert cfg.points.points_per_instance >= 1
        if "train" in data:
            from owl_train.stages.config import load_train_config

            assert load_train_config(f).stage in ("stage1", "stage2")


def test_unknown_config_key_is_named(tmp_path):
    from owl_data.build.config import load_build_config

    p = tmp_path / "b.yaml"
    p.write_text("build:\n  sed: 3\n")
    with pytest.raises(ValueError, match="sed"):
        load_build_config(p)
