"""owl_train.stages.loop: the progress display is the caller's; the loop itself shows nothing."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from owl_train.stages import run_stage1

sys.path.insert(0, str(Path(__file__).parent))
from _stage_helpers import stage1_config  # noqa: E402

STAGES = Path(__file__).resolve().parents[3] / "owl_train" / "stages"


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def open(self, desc: str, total: int, done: int) -> None:
        self.calls.append(("open", desc, total, done))

    def update(self, step: int, loss: float, samples_per_s: float) -> None:
        self.calls.append(("update", step, round(loss, 6)))

    def close(self) -> None:
        self.calls.append(("close",))


def test_progress_is_opened_updated_per_step_and_closed(world, tmp_path):
    rec = _Recorder()
    res = run_stage1(stage1_config(world, tmp_path / "a", max_steps=3, progress=True), progress=rec)
    assert rec.calls == [("open", "stage1", 3, 0), *[("update", i + 1, round(res.losses[i], 6)) for i in range(3)],
                         ("close",)]
    quiet = _Recorder()
    run_stage1(stage1_config(world, tmp_path / "b", max_steps=1, progress=False), progress=quiet)
    assert quiet.calls == []  # cfg.progress false: not shown


def test_resumed_run_opens_the_bar_at_its_step(world, tmp_path):
    run_stage1(stage1_config(world, tmp_path / "r", max_steps=2, stop_at_step=1))
    rec = _Recorder()
    run_stage1(stage1_config(world, tmp_path / "r", max_steps=2, resume="latest", progress=True), progress=rec)
    assert rec.calls[0] == ("open", "stage1", 2, 1) and [c[1] for c in rec.calls if c[0] == "update"] == [2]


def test_the_loop_and_its_engine_build_no_console():
    for name in ("loop.py", "engine.py", "run.py", "stage1.py", "stage2.py"):
        tree = ast.parse((STAGES / name).read_text())
        mods = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        mods |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not any(m == "rich" or m.startswith("rich.") for m in mods), name
