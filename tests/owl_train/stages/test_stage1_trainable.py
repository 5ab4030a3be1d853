"""Stage 1's trainable set: the vision tower follows freeze_vision (``--set freeze_vision=false``),
the point encoder and the focus sampler always train."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "model"))
from _model_helpers import our_config  # noqa: E402

from owl_train.stages.config import load_train_config, parse_overrides
from owl_train.model.model import OwlVL
from owl_train.stages.stage1 import set_stage1_trainable

ROOT = Path(__file__).resolve().parents[3]


def _trainable(sets: list[str]) -> dict[str, bool]:
    cfg = load_train_config(ROOT / "pipelines" / "stage1.yaml", parse_overrides(sets))
    m = OwlVL(dataclasses.replace(our_config(), point_focus=True))
    set_stage1_trainable(m, cfg)
    return {n: p.requires_grad for n, p in m.named_parameters()}


@pytest.mark.parametrize("sets", [[], ["freeze_vision=false"], ["tune=lora"], ["freeze_vision=false", "tune=lora"]])
def test_vision_follows_freeze_vision_and_point_weights_always_train(sets):
    t = _trainable(sets)
    frozen = "freeze_vision=false" not in sets
    vision = {n: g for n, g in t.items() if n.startswith("visual.")}
    assert all(g for n, g in vision.items() if n.startswith("visual.merger."))
    assert all(g != frozen for n, g in vision.items() if not n.startswith("visual.merger."))
    assert all(g for n, g in t.items() if n.startswith(("point_encoder.", "point_focus.")))
    assert any(n.startswith("point_focus.") for n in t)
    base = [g for n, g in t.items() if n.startswith("decoder.") and "lora_" not in n and "base_layer" not in n]
    assert all(base) if "tune=lora" not in sets else not any(base)
