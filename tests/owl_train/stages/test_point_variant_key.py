"""Stage 1's ``point_variant`` key: a preset switched on for the loaded model before training.

From a (b) model with ``cd``: the focus sampler is added zero-init (logits unchanged before any
step), ``mrope_interleaved`` keeps the checkpoint's False (with a note), the saved config carries
the options and a resume applies the same; from a ``cd`` model nothing changes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from owl_train.stages.config import TrainConfig, load_train_config
from owl_train.data import Collator
from owl_train.model.config import OwlVLConfig
from owl_train.model.tiny import init_tiny
from owl_train.model.variants import DEFAULT_VARIANT, VARIANTS, variant_of
from owl_train.stages import load_model_dir, run_stage1
from owl_train.data.rows import corpus_rows
from owl_train.stages.stage1 import apply_point_variant, data_config

sys.path.insert(0, str(Path(__file__).parent))
from _stage_helpers import stage1_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def b_model(tmp_path_factory) -> Path:
    return init_tiny(tmp_path_factory.mktemp("b_image") / "tiny", variant="b_image")


def _logits(model, b):
    with torch.no_grad():
        return model(b["input_ids"], attention_mask=b["attention_mask"], position_ids=b["position_ids"],
                     pixel_values=b["pixel_values"], image_grid_thw=b["image_grid_thw"], points=b["points"]).logits


def test_cd_on_a_b_model_adds_zero_init_focus_and_keeps_the_rotary_layout(world, b_model):
    notes: list[str] = []
    cfg = stage1_config(world, Path("unused"), model=str(b_model), point_variant="cd", seed=3)
    before = load_model_dir(b_model)
    loaded = load_model_dir(b_model)
    model = apply_point_variant(loaded.model, "cd", seed=cfg.seed, note=notes.append)
    c = model.config
    assert c.point_focus and model.point_focus is not None and not c.mrope_interleaved
    assert model.decoder.mrope_interleaved is False  # the rotary layout the weights learnt
    assert any("mrope_interleaved" in n and "kept" in n for n in notes)
    assert torch.count_nonzero(model.point_focus.fc2.weight) == 0
    assert torch.count_nonzero(model.point_focus.fc1.weight) > 0
    again = apply_point_variant(load_model_dir(b_model).model, "cd", seed=cfg.seed)  # deterministic from seed
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    rows = corpus_rows(world["corpus"], "point_vqa", "val", limit=3)
    b = Collator(loaded.tokenizer, data_config(cfg, c))(rows)  # the collator of the modified config
    assert b["points"] is not None and b["points"].shape[0] > 0
    assert torch.equal(_logits(model, b), _logits(before.model, b))
    with torch.no_grad():  # the batch does reach the sampler: a non-zero last layer changes the logits
        model.point_focus.fc2.weight.fill_(0.05)
    assert not torch.allclose(_logits(model, b), _logits(before.model, b), atol=1e-4)


def test_stage1_saves_the_applied_options_and_notes_the_kept_layout(world, b_model, tmp_path):
    notes: list[str] = []
    res = run_stage1(stage1_config(world, tmp_path / "r", model=str(b_model), point_variant="cd", max_steps=2,
                                   warmup_ratio=0.0), note=notes.append)
    assert res.steps == 2 and res.model_dir is not None and res.task_counts["point_vqa"] > 0
    assert any("mrope_interleaved" in n and "kept" in n for n in notes)
    saved = OwlVLConfig.from_pretrained(res.model_dir)
    assert saved.point_focus and not saved.mrope_interleaved and saved.point_placement == "image"
    assert json.loads((res.model_dir / "config.json").read_text())["point_focus"] is True
    reloaded = load_model_dir(res.model_dir).model
    assert reloaded.point_focus is not None
    assert torch.count_nonzero(reloaded.point_focus.fc2.weight) > 0  # it trained (and was saved)


def test_resume_applies_the_same_preset_and_refuses_another(world, b_model, tmp_path):
    kw = dict(model=str(b_model), point_variant="cd", max_steps=2, batch_size=2)
    full = run_stage1(stage1_config(world, tmp_path / "a", **kw))
    first = run_stage1(stage1_config(world, tmp_path / "b", stop_at_step=1, **kw))
    assert first.steps == 1 and first.model_dir is None
    with pytest.raises(ValueError, match="point_variant"):  # d_focus gives the same model, but another key
        run_stage1(stage1_config(world, tmp_path / "b", resume="latest", **{**kw, "point_variant": "d_focus"}))
    second = run_stage1(stage1_config(world, tmp_path / "b", resume="latest", **kw))
    assert second.resumed_from is not None and second.steps == 2
    assert first.losses + second.losses == pytest.approx(full.losses, abs=1e-6)
    a = load_model_dir(tmp_path / "a").model.state_dict()
    b = load_model_dir(tmp_path / "b").model.state_dict()
    assert set(a) == set(b) and any(k.startswith("point_focus.") for k in a)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_default_on_a_default_model_changes_nothing(world, tmp_path):
    notes: list[str] = []
    before = load_model_dir(world["tiny"]).model
    assert variant_of(before.config) == DEFAULT_VARIANT  # init-tiny's default
    model = apply_point_variant(load_model_dir(world["tiny"]).model, DEFAULT_VARIANT, seed=5, note=notes.append)
    assert notes == [] and model.config == before.config
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.state_dict().items())
    assert set(model.state_dict()) == set(before.state_dict())
    res = run_stage1(stage1_config(world, tmp_path / "r", point_variant=DEFAULT_VARIANT, max_steps=1, batch_size=2),
                     note=notes.append)
    assert not any("point_variant" in n for n in notes)
    saved = OwlVLConfig.from_pretrained(res.model_dir)
    assert {k: getattr(saved, k) for k in VARIANTS[DEFAULT_VARIANT]} == VARIANTS[DEFAULT_VARIANT]


def test_unknown_preset_names_the_field_and_lists_the_presets(world):
    with pytest.raises(ValueError, match=r"point_variant='cdx'.*b_image.*cd"):
        TrainConfig(point_variant="cdx")
    with pytest.raises(ValueError, match="point_variant"):
        load_train_config(None, {"point_variant": "nope"})
    with pytest.raises(ValueError, match="point_variant.*stage 2"):
        TrainConfig(stage="stage2", point_variant="cd")
    with pytest.raises(ValueError, match="point_variant='zz'"):
        apply_point_variant(load_model_dir(world["tiny"]).model, "zz")


def test_shipped_stage1_yaml_switches_the_default_variant_on():
    assert load_train_config(ROOT / "pipelines" / "stage1.yaml").point_variant == DEFAULT_VARIANT
    assert TrainConfig().point_variant is None
