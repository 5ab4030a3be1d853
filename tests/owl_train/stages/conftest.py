"""Shared, built once per session: the embedded default corpus, a 5:1:2:2 mix, a tiny model and a
30-step stage-1 run (small images: at most 16 image tokens)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from owl_data.build.driver import SourceSpec, run_build
from owl_data.build.config import BuildConfig
from owl_data.mix.io import MixConfig, parse_ratio, write_mix
from owl_data.sources.synthetic.scenes import write_default_sources
from owl_train.stages.config import TrainConfig
from owl_train.model.tiny import init_tiny

sys.path.insert(0, str(Path(__file__).parent))
from _stage_helpers import SMALL, stage1_config  # noqa: E402


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("owl_stages")
    sources = write_default_sources(root / "scenes")
    run_build([SourceSpec(n, s, synthetic=True) for n, s in sources], root / "corpus", BuildConfig())
    write_mix(root / "corpus", root / "mix", MixConfig(ratio=parse_ratio("5:1:2:2"), num_samples=200))
    init_tiny(root / "tiny")
    return {"root": root, "corpus": root / "corpus", "mix": root / "mix", "tiny": root / "tiny"}


@pytest.fixture(scope="session")
def stage1_run(world):
    from owl_train.stages import run_stage1

    out = world["root"] / "stage1"
    res = run_stage1(stage1_config(world, out))
    return res, out


@pytest.fixture(scope="session")
def stage2_run(world, stage1_run):
    from owl_train.stages import run_stage2

    _, s1 = stage1_run
    out = world["root"] / "stage2"
    cfg = TrainConfig(stage="stage2", model=str(s1), corpus=str(world["corpus"]), out=str(out), batch_size=4,
                      max_steps=30, lr=1e-2, warmup_ratio=0.0, num_virtual_tokens=8, **SMALL)
    return run_stage2(cfg), s1, out
