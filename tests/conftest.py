"""Shared fixtures: where the real sample data lives, and how tests that need it behave.

Markers (``--strict-markers``; pyproject.toml lists them):

- ``realdata``: the test reads ../shared/data. Added here to every test whose own code, a function
  of its module it calls, or one of its fixtures names :func:`need_shared_data`, ``SHARED_DATA``
  or the ``shared_data`` fixture (parametrised cases mark themselves). :func:`need_shared_data`
  fails a test that reads the data without the mark, so ``-m "not realdata"`` never touches it.
- ``gpu``: the test needs a CUDA device; skipped without one.
- ``slow``: takes more than a few seconds.
"""

from __future__ import annotations

import os
import types
from pathlib import Path

import pytest

# resolved after the join: ../shared may itself be a symlink, and readers report resolved paths
SHARED_DATA = (Path(__file__).resolve().parents[1].parent / "shared" / "data").resolve()
_DATA_NAMES = frozenset({"need_shared_data", "SHARED_DATA", "shared_data"})
_running: list[pytest.Item] = []  # the test being set up, run or torn down


def need_shared_data(*parts: str) -> Path:
    """The path under ../shared/data, or skip (fail when CI is set) if it is absent.

    Raises:
        pytest.fail: the calling test is not marked ``realdata`` (see the module docstring).
    """
    if _running and _running[0].get_closest_marker("realdata") is None:
        pytest.fail(f"{_running[0].nodeid} reads ../shared/data but is not marked realdata")
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


def _names_shared_data(code: types.CodeType, namespace: dict, seen: set[int]) -> bool:
    """Whether ``code`` (its nested functions included) names the shared data, directly or through a
    function of ``namespace`` (its module's globals) that does."""
    if id(code) in seen:
        return False
    seen.add(id(code))
    if _DATA_NAMES & set(code.co_names) or "shared_data" in code.co_varnames[:code.co_argcount]:
        return True
    for c in code.co_consts:
        if isinstance(c, types.CodeType) and _names_shared_data(c, namespace, seen):
            return True
    for name in code.co_names:
        f = namespace.get(name)
        if isinstance(f, types.FunctionType) and _names_shared_data(f.__code__, f.__globals__, seen):
            return True
    return False


def _reads_shared_data(item: pytest.Item) -> bool:
    """Whether the test function or one of its fixtures (static closure) names the shared data."""
    funcs = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    if info is not None:
        funcs += [d.func for name in item.fixturenames for d in info.name2fixturedefs.get(name, ())]
    seen: set[int] = set()
    for f in funcs:
        f = getattr(f, "__wrapped__", f)
        if isinstance(f, types.FunctionType) and _names_shared_data(f.__code__, f.__globals__, seen):
            return True
    return False


def pytest_collection_modifyitems(config, items):
    """Mark ``realdata`` where the data is read; skip ``gpu`` tests without CUDA."""
    cuda = None
    for item in items:
        if item.get_closest_marker("realdata") is None and _reads_shared_data(item):
            item.add_marker(pytest.mark.realdata)
        if item.get_closest_marker("gpu") is not None:
            if cuda is None:
                import torch

                cuda = torch.cuda.is_available()
            if not cuda:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA device (marker gpu)"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _running[:] = [item]


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    _running.clear()
