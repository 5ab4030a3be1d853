"""benchmarks/point_bench.py refuses bad arguments with one ``error:`` line before any work."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

@pytest.fixture
def bench(monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import point_bench

    def no_work(*a, **k):
        raise AssertionError("point_bench started building for arguments it should refuse")

    monkeypatch.setattr(point_bench, "build_corpus", no_work)
    yield point_bench
    sys.path.remove(str(ROOT / "benchmarks"))


@pytest.mark.parametrize("args,expect", [
    (["--variants", "nope"], "unknown variant"),
    (["--variants", ""], "name at least one variant"),
    (["--variants", " , "], "name at least one variant"),
    (["--size", "bad"], "--size 'bad'"),
    (["--size", "512x256x2"], "--size '512x256x2'"),
    (["--size", "1x1"], "default_scenes.width=1"),
    (["--steps", "0"], "--steps 0"),       # was: silently the default 3000 steps
    (["--steps", "-4"], "--steps -4"),
    (["--train-scenes", "0"], "default_scenes.train=0"),
    (["--lr", "0"], "--lr 0.0"),
    (["--lr", "nan"], "--lr nan"),
    (["--max-pixels", "0"], "--max-pixels 0"),
    (["--workers", "0"], "--workers 0"),
    (["--jobs", "0"], "--jobs 0"),
    (["--eval-limit", "-1"], "--eval-limit -1"),
    (["--crop-pixels", "30"], "foveal_crop_pixels=30"),
    (["--crop-fraction", "2"], "foveal_crop_fraction=2.0"),
])
def test_point_bench_refuses_bad_arguments_before_any_work(bench, tmp_path, capsys, args, expect):
    work = tmp_path / "work"
    assert bench.main([*args, "--work", str(work)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and expect in err, err
    assert not work.exists()


def test_point_bench_work_that_is_a_file(bench, tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("x")
    assert bench.main(["--work", str(f)]) == 2 and "is not a folder" in capsys.readouterr().err
