"""Shared fixtures: where the real sample data lives, and how tests that need it behave."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def need_shared_data(*parts: str) -> Path:
    """The path under ../shared/data, or skip (fail when CI is set) if it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{p} is missing but CI is set: real-data tests must run in CI")
        pytest.skip(f"real sample data not found at {p} (it lives beside the project, in ../shared/data)")
    return p


def split_records(records):
    """(scenes, rejects) of a reader's output; every record is one or the other."""
    from owl_data.records import Reject, Scene

    records = list(records)
    scenes = [r for r in records if isinstance(r, Scene)]
    rejects = [r for r in records if isinstance(r, Reject)]
    assert len(scenes) + len(rejects) == len(records)
    return scenes, rejects


@pytest.fixture
def shared_data() -> Path:
    return need_shared_data()
