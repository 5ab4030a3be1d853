"""Stage 2: P-tuning on the point-VQA descriptions without a question.

Everything of the stage-1 model is frozen; only a :class:`~owl_train.stages.ptuning.PromptEncoder`
making ``num_virtual_tokens`` virtual tokens trains. The collator puts the virtual tokens right
after ``<|point|>`` in user turns that are exactly ``<image><point>``; the rows are those turns'
description rows (``kind == "description"``), taken from ``cfg.mix`` when given or from a
point_vqa-only mix of ``cfg.split`` written to ``OUT/stage2-mix`` (enough epochs for ``max_steps``).
The final model folder is the stage-1 model (files hard-linked when unchanged) plus
``prompt_encoder.safetensors``/``prompt_encoder.json``.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Callable

import pyarrow.parquet as pq

from owl_data.mix.io import MixConfig, write_mix
from owl_train.config import TrainConfig
from owl_train.data import Collator
from owl_train.stages.checkpoints import check_run_folder, load_model_dir, save_model_dir
from owl_train.stages.lora import ADAPTER_FILE
from owl_train.stages.loop import LoopResult, train
from owl_train.stages.module import TrainModule
from owl_train.stages.ptuning import PromptEncoder
from owl_train.data.rows import FilteredMix, description_mask
from owl_train.stages.stage1 import data_config

__all__ = ["stage2_mix", "run_stage2"]


def stage2_mix(cfg: TrainConfig, note: Callable[[str], None] = lambda s: None) -> Path:
    """``cfg.mix``, or a point_vqa-only mix of ``cfg.split`` written under ``cfg.out/stage2-mix``."""
    if cfg.mix:
        return Path(cfg.mix)
    out = Path(cfg.out) / "stage2-mix"
    corpus = Path(cfg.corpus)
    files = sorted((corpus / "point_vqa" / cfg.split).glob("*.parquet"))
    n_rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    n_keep = sum(int(description_mask(pq.read_table(f, columns=["kind", "conversations"])).sum()) for f in files)
    if not n_keep:
        raise ValueError(f"{corpus} has no point_vqa description rows without a question in split {cfg.split!r}; "
                         "stage 2 trains on those")
    need = cfg.max_steps * cfg.batch_size * cfg.grad_accum * _world()
    epochs = max(1, math.ceil(need / n_keep)) if need else 1
    want = {"epochs": epochs, "split": cfg.split, "rows": n_rows}
    stamp = out / "owl-stage2.json"

    if not (stamp.is_file() and json.loads(stamp.read_text()) == want):
        write_mix(corpus, out, MixConfig(ratio=(Fraction(1),), tasks=("point_vqa",), epochs=epochs, split=cfg.split))
        stamp.write_text(json.dumps(want) + "\n")
        note(f"stage-2 mix: {epochs} epoch(s) of point_vqa/{cfg.split} ({n_keep} no-question descriptions) in {out}")
    return out


def _world() -> int:
    from owl_train.data.rows import dist_rank_world

    return dist_rank_world()[1]


def run_stage2(cfg: TrainConfig, note: Callable[[str], None] = lambda s: None) -> LoopResult:
    """P-tune from the stage-1 model ``cfg.model``; the model lands in ``cfg.out/model``."""
    if cfg.stage != "stage2":
        raise ValueError(f"train config field stage={cfg.stage!r} is invalid here: run stage 1 with owl-train stage1")
    cfg.check_ready()
    check_run_folder(cfg.out, cfg.resume)
    loaded = load_model_dir(cfg.model, merge_lora_weights=True)
    model = loaded.model
    for p in model.parameters():
        p.requires_grad_(False)
    D = model.config.text.hidden_size
    prompt = loaded.prompt
    if prompt is None or prompt.num_virtual_tokens != cfg.num_virtual_tokens:
        prompt = PromptEncoder(cfg.num_virtual_tokens, D, cfg.prompt_hidden, seed=cfg.seed)
    for p in prompt.parameters():
        p.requires_grad_(True)
    collator = Collator(loaded.tokenizer, data_config(cfg, model.config, num_virtual_tokens=cfg.num_virtual_tokens))
    source = FilteredMix(Path(cfg.corpus), stage2_mix(cfg, note), num_workers=cfg.num_workers)
    base_files = None if (loaded.path / ADAPTER_FILE).is_file() else loaded.path

    def save_final(module: TrainModule, folder: Path) -> Path:
        return save_model_dir(module.model, folder, loaded.path, prompt=module.prompt, base_unchanged_from=base_files)

    return train(cfg, TrainModule(model, prompt), source, collator, tokenizer_src=loaded.path,
                 save_final=save_final, note=note)
