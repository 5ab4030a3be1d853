"""``pipelines/stage1_recipe.sh`` (the README's stage-1 recipe) runs commands this version accepts:
its sources are registered readers covering every task of the 5:1:2:2 mix, and its mix and stage-1
arguments parse. The script runs with recording stand-ins for ``owl-data``/``owl-train``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from owl_data.build.driver import SourceSpec
from owl_data.mix.io import parse_ratio, parse_within
from owl_data.sources import get_reader

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "pipelines" / "stage1_recipe.sh"

# which task tables each source the recipe names writes (the README's Input formats table)
WRITES = {"cityscapes": {"point_vqa"}, "coco": {"point_vqa", "grounding"}, "drivelm": {"point_vqa", "grounding"},
          "vqav2": {"vqa"}, "gqa": {"vqa"}, "coco_captions": {"caption"}, "flickr30k": {"caption", "grounding"},
          "refcoco": {"grounding"}}


def _recorded(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "calls"
    stub = tmp_path / "stub.sh"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\037" "$(basename "$0")" "$@" >> {log}\nprintf "\\036" >> {log}\n')
    stub.chmod(0o755)
    (tmp_path / "owl-data").symlink_to(stub)
    (tmp_path / "owl-train").symlink_to(stub)
    (tmp_path / "model").mkdir()
    env = {**os.environ, "DATA": "/data", "OUT": str(tmp_path / "out"), "MODEL": str(tmp_path / "model"),
           "WORKERS": "4", "OWL_DATA": str(tmp_path / "owl-data"), "OWL_TRAIN": str(tmp_path / "owl-train")}
    subprocess.run(["bash", str(RECIPE)], env=env, cwd=ROOT, check=True, timeout=60)
    return [c.split("\x1f")[:-1] for c in log.read_text().split("\x1e") if c]


def _option(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]


def test_recipe_commands_parse_and_fill_every_task(tmp_path):
    calls = _recorded(tmp_path)
    assert [c[:2] for c in calls] == [["owl-data", "build"], ["owl-data", "stats"], ["owl-data", "validate"],
                                      ["owl-data", "mix"], ["owl-train", "stage1"]]
    build, mix, stage1 = calls[0], calls[3], calls[4]
    specs = [SourceSpec.parse(s) for s in _option(build, "--source")]
    for s in specs:
        get_reader(s.name)  # a registered reader
        assert s.spec.startswith("/data/"), s
    assert {s.name for s in specs} == set(WRITES)
    tasks = _option(mix, "--tasks")[0].split(",")
    assert tasks == ["vqa", "caption", "grounding", "point_vqa"] and _option(mix, "--ratio") == ["5:1:2:2"]
    assert [float(w) for w in parse_ratio(_option(mix, "--ratio")[0])] == [5, 1, 2, 2]
    for task in tasks:  # every task of the mix has a source that writes it
        assert any(task in WRITES[s.name] for s in specs), task
    within = parse_within(_option(mix, "--within"))
    point_sources = {s.name for s in specs if "point_vqa" in WRITES[s.name]}
    assert set(within["point_vqa"]) == point_sources  # --within must list each of the task's sources once
    from owl_train.stages.config import load_train_config

    cfg = load_train_config(ROOT / _option(stage1, "--config")[0],
                            {"model": _option(stage1, "--model")[0], "corpus": _option(stage1, "--corpus")[0],
                             "mix": _option(stage1, "--mix")[0], "out": _option(stage1, "--out")[0]},
                            stage="stage1")
    assert cfg.stage == "stage1" and cfg.mix.endswith("/mix")
