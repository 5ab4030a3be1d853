"""What both stages do around their own recipe: the checks before a run, the data config, the
final model folder, and the call into the loop.

A stage (:mod:`~owl_train.stages.stage1`, :mod:`~owl_train.stages.stage2`) is then: open the run
(:func:`open_run`), set what trains, pick its rows, :func:`train_stage`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable

from owl_data.errors import FieldError
from owl_train.stages.config import WHAT, TrainConfig
from owl_train.data import Collator, DataConfig, data_config_for_model
from owl_train.model.config import OwlVLConfig
from owl_train.stages.checkpoints import LoadedModel, check_run_folder, load_model_dir, save_model_dir
from owl_train.stages.loop import LoopResult, Progress, train
from owl_train.stages.module import TrainModule
from owl_train.stages.ptuning import PromptEncoder

__all__ = ["data_config", "open_run", "train_stage"]

_OTHER = {"stage1": "run stage 2 with owl-train stage2", "stage2": "run stage 1 with owl-train stage1"}


def data_config(cfg: TrainConfig, model: OwlVLConfig, num_virtual_tokens: int = 0,
                padding_side: str = "right") -> DataConfig:
    """The training run's :class:`DataConfig`, with point placement and foveal crop from ``model``."""
    dc = DataConfig(min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels, max_length=cfg.max_length,
                    box_format=cfg.box_format, pack=cfg.pack, pad_to_multiple_of=cfg.pad_to_multiple_of,
                    num_virtual_tokens=num_virtual_tokens, padding_side=padding_side)
    return data_config_for_model(dc, model)


def open_run(cfg: TrainConfig, stage: str) -> LoadedModel:
    """The init model ``cfg.model`` (LoRA merged), after the checks every stage makes first.

    Raises:
        FieldError: ``cfg.stage`` is not ``stage``, or a path the run needs is unset.
        ValueError: ``cfg.out`` is not a fresh run folder (or, with ``resume``, a run folder).
    """
    if cfg.stage != stage:
        raise FieldError("stage", f"{WHAT} stage={cfg.stage!r} is invalid here: {_OTHER[stage]}")
    cfg.check_ready()
    check_run_folder(cfg.out, cfg.resume)
    return load_model_dir(cfg.model, merge_lora_weights=True)


def _save_final(module: TrainModule, folder: Path, *, init: Path, prompt: PromptEncoder | None,
                base_unchanged_from: Path | None) -> Path:
    return save_model_dir(module.model, folder, init, prompt=prompt, base_unchanged_from=base_unchanged_from)


def train_stage(cfg: TrainConfig, loaded: LoadedModel, module: TrainModule, source: Any, collator: Collator, *,
                prompt: PromptEncoder | None, base_unchanged_from: Path | None = None,
                note: Callable[[str], None] = lambda s: None, progress: Progress | None = None) -> LoopResult:
    """Train ``module`` on ``source``; the final model folder ``cfg.out/model`` holds ``module.model``,
    ``prompt`` and the init model's tokenizer (``base_unchanged_from``: see
    :func:`~owl_train.stages.checkpoints.save_model_dir`)."""
    save_final = partial(_save_final, init=loaded.path, prompt=prompt, base_unchanged_from=base_unchanged_from)
    return train(cfg, module, source, collator, tokenizer_src=loaded.path, save_final=save_final, note=note,
                 progress=progress)
