"""Corpora the export tests share: drawn street scenes (point_vqa) and DriveLM (point_vqa + grounding)."""

from __future__ import annotations

from pathlib import Path

import pytest

from owl_data.build.driver import SourceSpec, run_build
from owl_data.build.config import BuildConfig
from owl_data.sources.synthetic.scenes import write_default_scenes
from tests.conftest import need_shared_data


@pytest.fixture(scope="session")
def syn_corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("syn")
    scenes = write_default_scenes(root / "scenes", seed=0)
    out = root / "corpus"
    run_build([SourceSpec("cityscapes", str(scenes), synthetic=True)], out, BuildConfig(max_reasoning=1))
    return out


@pytest.fixture(scope="session")
def drive_corpus(tmp_path_factory) -> Path:
    src = need_shared_data("drivelm")
    out = tmp_path_factory.mktemp("drive") / "corpus"
    run_build([SourceSpec("drivelm", str(src))], out, BuildConfig())
    return out
