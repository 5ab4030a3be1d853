"""Training configs: shipped YAMLs load, overrides apply, bad values name field and fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from owl_train.stages.config import TrainConfig, load_train_config, parse_overrides

ROOT = Path(__file__).resolve().parents[3]


# values each shipped YAML sets that differ from TrainConfig's defaults (a YAML ignored would fail)
SHIPPED = {
    "stage1.yaml": {"stage": "stage1", "max_length": 2048, "num_workers": 2, "grad_accum": 4, "point_variant": "cde",
                    "log_every": 10, "save_every": 500},
    "stage2.yaml": {"stage": "stage2", "out": "runs/stage2", "max_length": 2048, "num_workers": 2, "batch_size": 8,
                    "lr": 1e-3, "log_every": 10, "save_every": 500},
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_yaml_loads(name):
    cfg = load_train_config(ROOT / "pipelines" / name)
    default = TrainConfig()
    for field, value in SHIPPED[name].items():
        assert getattr(cfg, field) == value, field
        assert getattr(default, field) != value or field == "stage", field  # the YAML is what sets it
    assert cfg.warmup_ratio == 0.03
    if cfg.stage == "stage1":
        assert cfg.freeze_vision and cfg.train_projector and cfg.tune == "full"


def test_zero2_json_is_the_builtin_default():
    from owl_train.stages.engine import DEFAULT_ZERO2, _ds_config

    data = json.loads((ROOT / "pipelines" / "zero2.json").read_text())
    assert data == DEFAULT_ZERO2 and data["zero_optimization"]["stage"] == 2
    ds = _ds_config(TrainConfig(batch_size=3, grad_accum=2, deepspeed=str(ROOT / "pipelines" / "zero2.json")), 2, False)
    assert ds["train_batch_size"] == 12 and ds["bf16"]["enabled"] is False and ds["gradient_clipping"] == 1.0


def test_overrides_from_the_command_line():
    o = parse_overrides(["lr=1e-4", "tune=lora", "lora_targets=[q_proj,v_proj]", "mix=null"])
    cfg = load_train_config(ROOT / "pipelines" / "stage1.yaml", {**o, "max_steps": 7})
    assert cfg.lr == 1e-4 and cfg.tune == "lora" and cfg.lora_targets == ("q_proj", "v_proj") and cfg.max_steps == 7


@pytest.mark.parametrize("kw,match", [
    ({"tune": "qlora"}, "tune='qlora'.*full or lora"),
    ({"warmup_ratio": 1.5}, "warmup_ratio=1.5"),
    ({"lora_targets": ("qkv",)}, "lora_targets"),
    ({"batch_size": 0}, "batch_size=0"),
])
def test_bad_values_name_field_and_fix(kw, match):
    with pytest.raises(ValueError, match=match):
        load_train_config(None, kw)


def test_unknown_key_suggests_the_field(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("train:\n  warmup_ratoi: 0.1\n")  # one swapped letter: warmup_ratio is the close match
    with pytest.raises(ValueError) as e:
        load_train_config(p)
    assert str(e.value).endswith("train config has no field 'warmup_ratoi'; did you mean 'warmup_ratio'?"), e.value
    p.write_text("train:\n  lerning_rate: 1\n")  # no close field: every field is listed instead
    with pytest.raises(ValueError, match="no field 'lerning_rate'; fields: stage, "):
        load_train_config(p)


@pytest.mark.parametrize("over,field", [({"lr": float("inf")}, "lr"), ({"lr": [1, 2]}, "lr"),
                                        ({"device": {"a": 1}}, "device"), ({"freeze_vision": "maybe"}, "freeze_vision"),
                                        ({"num_virtual_tokens": "abc"}, "num_virtual_tokens"),
                                        ({"adam_betas": [0.9, "x"]}, "adam_betas")])
def test_config_types_are_one_line_errors(over, field):
    with pytest.raises(ValueError, match=f"field {field}="):
        load_train_config(None, over)
