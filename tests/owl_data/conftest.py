"""Fixtures shared by the owl_data tests: a tiny written corpus and a small built one."""

from __future__ import annotations

from pathlib import Path

import pytest

from owl_data.build.driver import SourceSpec
from tests.owl_data.helpers import build_checked, lcb_source
from tests.owl_data.mix.conftest import write_tiny_corpus


@pytest.fixture
def tiny(tmp_path) -> Path:
    """The 4-task tiny corpus of tests/owl_data/mix/conftest.py at ``tmp_path/corpus``."""
    return write_tiny_corpus(tmp_path / "corpus")


@pytest.fixture
def lcb_corpus(tmp_path) -> Path:
    """A built corpus with caption and grounding rows (two cars, left and right)."""
    src = lcb_source(tmp_path, [{"id": 1, "image": "a.png", "captions": ["Two cars."],
                                 "instances": [{"category": "car", "bbox": [0.05, 0.1, 0.3, 0.5]},
                                               {"category": "car", "bbox": [0.6, 0.1, 0.9, 0.5]}]}])
    out = tmp_path / "corpus"
    build_checked(out, SourceSpec("llava_caps_boxes", str(src)))
    return out
