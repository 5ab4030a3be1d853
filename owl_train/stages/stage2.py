"""Stage 2: P-tuning on the point-VQA descriptions without a question.

Everything of the stage-1 model is frozen; only a :class:`~owl_train.stages.ptuning.PromptEncoder`
making ``num_virtual_tokens`` virtual tokens trains. The collator puts the virtual tokens right
after ``<|point|>`` in user turns that are exactly ``<image><point>``; the rows are those turns'
description rows (``kind == "description"``), taken from ``cfg.mix`` when given or from a
point_vqa-only mix of ``cfg.split`` written to ``OUT/stage2-mix`` (enough epochs for ``max_steps``;
:func:`owl_train.data.rows.description_mix`).
The final model folder is the stage-1 model (files hard-linked when unchanged) plus
``prompt_encoder.safetensors``/``prompt_encoder.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from owl_train.stages.config import TrainConfig
from owl_train.data import Collator
from owl_train.data.rows import FilteredMix, description_mix, dist_rank_world
from owl_train.stages.lora import ADAPTER_FILE
from owl_train.stages.loop import LoopResult, Progress
from owl_train.stages.module import TrainModule
from owl_train.stages.ptuning import PromptEncoder
from owl_train.stages.run import data_config, open_run, train_stage

__all__ = ["stage2_mix", "run_stage2"]


def stage2_mix(cfg: TrainConfig, note: Callable[[str], None] = lambda s: None) -> Path:
    """``cfg.mix``, or a point_vqa-only mix of ``cfg.split`` written under ``cfg.out/stage2-mix``
    with enough rows for ``max_steps`` on every rank."""
    if cfg.mix:
        return Path(cfg.mix)
    need = cfg.max_steps * cfg.batch_size * cfg.grad_accum * dist_rank_world()[1]
    return description_mix(Path(cfg.corpus), Path(cfg.out) / "stage2-mix", cfg.split, need, note=note)


def run_stage2(cfg: TrainConfig, note: Callable[[str], None] = lambda s: None,
               progress: Progress | None = None) -> LoopResult:
    """P-tune from the stage-1 model ``cfg.model``; the model lands in ``cfg.out/model``.

    ``note`` takes one-line messages, ``progress`` shows the steps (see :func:`owl_train.stages.loop.train`).
    """
    loaded = open_run(cfg, "stage2")
    model = loaded.model
    for p in model.parameters():
        p.requires_grad_(False)
    prompt = loaded.prompt
    if prompt is None or prompt.num_virtual_tokens != cfg.num_virtual_tokens:
        prompt = PromptEncoder(cfg.num_virtual_tokens, model.config.text.hidden_size, cfg.prompt_hidden, seed=cfg.seed)
    for p in prompt.parameters():
        p.requires_grad_(True)
    collator = Collator(loaded.tokenizer, data_config(cfg, model.config, num_virtual_tokens=cfg.num_virtual_tokens))
    source = FilteredMix(Path(cfg.corpus), stage2_mix(cfg, note), num_workers=cfg.num_workers)
    base_files = None if (loaded.path / ADAPTER_FILE).is_file() else loaded.path
    return train_stage(cfg, loaded, TrainModule(model, prompt), source, collator, prompt=prompt,
                       base_unchanged_from=base_files, note=note, progress=progress)
