"""Stage 1: the loss falls, the realised task counts are the mix's, resume is exact, LoRA merges."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from owl_train.data import Collator, DataConfig
from owl_train.stages import load_model_dir, merge, run_stage1

sys.path.insert(0, str(Path(__file__).parent))
import sys
from pathlib import Path

from _stage_helpers import SMALL, stage1_config  # noqa: E402


def _jsonl(path):
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln]


def test_loss_falls_and_task_counts_match_the_mix(stage1_run, world):
    res, out = stage1_run
    assert res.steps == 30 and len(res.losses) == 30
    assert sum(res.losses[-5:]) / 5 < sum(res.losses[:5]) / 5 - 0.5
    picks = pq.read_table(world["mix"] / "mix.parquet", columns=["task", "id"]).slice(0, 120)
    assert res.task_counts == Counter(picks.column("task").to_pylist())  # 5:1:2:2 -> 60:12:24:24
    assert res.task_counts == {"vqa": 60, "caption": 12, "grounding": 24, "point_vqa": 24}
    ids = [i for rec in _jsonl(out / "logs" / "samples.jsonl") for i in rec["ids"]]
    assert ids == picks.column("id").to_pylist()  # in mix order, nothing dropped
    assert (out / "model" / "config.json").is_file() and (out / "model" / "tokenizer.json").is_file()


def test_resume_is_exact(world, tmp_path):
    full = run_stage1(stage1_config(world, tmp_path / "a", max_steps=20))
    first = run_stage1(stage1_config(world, tmp_path / "b", max_steps=20, stop_at_step=10))
    assert first.steps == 10 and first.model_dir is None
    second = run_stage1(stage1_config(world, tmp_path / "b", max_steps=20, resume="latest"))
    assert second.resumed_from is not None and second.steps == 20 and len(second.losses) == 10
    assert first.losses + second.losses == pytest.approx(full.losses, abs=1e-6)
    assert first.ids + second.ids == full.ids
    logged = _jsonl(tmp_path / "b" / "logs" / "metrics.jsonl")
    assert [r["step"] for r in logged] == list(range(1, 21))
    a = load_model_dir(tmp_path / "a").model.state_dict()
    b = load_model_dir(tmp_path / "b").model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_out_with_checkpoints_needs_resume(world, tmp_path):
    run_stage1(stage1_config(world, tmp_path / "c", max_steps=2, stop_at_step=1))
    with pytest.raises(ValueError, match="resume with `resume` latest"):
        run_stage1(stage1_config(world, tmp_path / "c", max_steps=2))


def test_lora_trains_only_adapters_and_merges_to_equal_logits(world, tmp_path):
    cfg = stage1_config(world, tmp_path / "lora", max_steps=3, tune="lora", lora_r=4, lora_alpha=8,
                        lora_dropout=0.0, lora_targets=("q_proj", "v_proj", "down_proj"), lr=5e-2)
    run_stage1(cfg)
    model_dir = tmp_path / "lora" / "model"
    assert (model_dir / "adapter_model.safetensors").is_file()
    base = load_model_dir(world["tiny"]).model.state_dict()
    unmerged = load_model_dir(model_dir, merge_lora_weights=False)
    plain = {k.replace(".base_layer.", "."): v for k, v in unmerged.model.state_dict().items() if "lora_" not in k}
    changed = {k for k in base if not torch.equal(base[k], plain[k])}
    assert changed and all(k.startswith(("visual.merger.", "point_encoder.", "point_focus.")) for k in changed)
    merge(model_dir, tmp_path / "merged")
    merged = load_model_dir(tmp_path / "merged")
    assert not (tmp_path / "merged" / "adapter_model.safetensors").exists()
    from owl_train.data.rows import corpus_rows

    rows = corpus_rows(world["corpus"], "point_vqa", "val", limit=3)
    b = Collator(merged.tokenizer, DataConfig(max_pixels=SMALL["max_pixels"]))(rows)
    with torch.no_grad():
        la = unmerged.model(b["input_ids"], attention_mask=b["attention_mask"], pixel_values=b["pixel_values"],
                            image_grid_thw=b["image_grid_thw"], points=b["points"]).logits
        lb = merged.model(b["input_ids"], attention_mask=b["attention_mask"], pixel_values=b["pixel_values"],
                          image_grid_thw=b["image_grid_thw"], points=b["points"]).logits
        lbase = load_model_dir(world["tiny"]).model(b["input_ids"], attention_mask=b["attention_mask"],
                                                    pixel_values=b["pixel_values"], image_grid_thw=b["image_grid_thw"],
                                                    points=b["points"]).logits
    assert torch.allclose(la, lb, atol=1e-4)
    assert not torch.allclose(la, lbase, atol=1e-3)  # the adapter did something


def test_resume_with_another_config_is_refused(stage1_run, world):
    from owl_train.stages import run_stage1

    _, out = stage1_run
    with pytest.raises(ValueError, match=r"batch_size=4, lr=0\.01.*batch_size=2, lr=0\.5"):
        run_stage1(stage1_config(world, out, resume="latest", lr=0.5, batch_size=2))


def test_every_row_dropped_skips_steps_then_fails(world, tmp_path):
    from owl_train.stages import run_stage1

    notes: list[str] = []
    with pytest.raises(ValueError, match="every row of 8 steps in a row was dropped"):
        run_stage1(stage1_config(world, tmp_path / "r", max_length=40, batch_size=2), note=notes.append)
    assert any("skipping it" in n for n in notes)
    assert not (tmp_path / "r" / "model").exists()
