"""Stage 1: continued pretraining on the task mix (the paper's 5:1:2:2).

The vision encoder is frozen (``freeze_vision``); the projector (the ViT's patch merger,
``train_projector``) and the language model are trained, fully (``tune: full``: decoder,
LM head and the point encoder) or with LoRA on the decoder's linear layers (``tune: lora``:
LoRA weights, the point encoder, the focus sampler and the projector train; everything else is
frozen). ``freeze_vision: false`` trains the whole vision tower (the tiny model may need it to
see thin objects).
The final model folder holds the base weights plus, for LoRA, the adapter (``owl-train merge``
folds it in).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from owl_train.config import TrainConfig
from owl_train.data import Collator, DataConfig, data_config_for_model
from owl_train.model.config import OwlVLConfig
from owl_train.model.model import EXTRA_WEIGHTS, OwlVL
from owl_train.stages.checkpoints import check_run_folder, load_model_dir, save_model_dir
from owl_train.stages.lora import apply_lora
from owl_train.stages.loop import LoopResult, TrainModule, train
from owl_train.stages.rows import MixStream

__all__ = ["data_config", "set_stage1_trainable", "run_stage1"]


def data_config(cfg: TrainConfig, model: OwlVLConfig, num_virtual_tokens: int = 0,
                padding_side: str = "right") -> DataConfig:
    """The training run's :class:`DataConfig`, with point placement and foveal crop from ``model``."""
    dc = DataConfig(min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels, max_length=cfg.max_length,
                    box_format=cfg.box_format, pack=cfg.pack, pad_to_multiple_of=cfg.pad_to_multiple_of,
                    num_virtual_tokens=num_virtual_tokens, padding_side=padding_side)
    return data_config_for_model(dc, model)


def set_stage1_trainable(model: OwlVL, cfg: TrainConfig) -> OwlVL:
    """requires_grad per the stage-1 recipe; with ``tune: lora`` injects the adapters."""
    for name, p in model.named_parameters():
        if name.startswith("visual."):
            p.requires_grad_(not cfg.freeze_vision or (cfg.train_projector and name.startswith("visual.merger.")))
        elif name.startswith(EXTRA_WEIGHTS):  # the point encoder and the focus sampler
            p.requires_grad_(True)
        else:  # decoder and LM head
            p.requires_grad_(cfg.tune == "full")
    if cfg.tune == "lora":
        apply_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets)
    return model


def run_stage1(cfg: TrainConfig, note: Callable[[str], None] = lambda s: None) -> LoopResult:
    """Train stage 1 from ``cfg.model`` on ``cfg.mix`` over ``cfg.corpus``; the model lands in ``cfg.out/model``."""
    if cfg.stage != "stage1":
        raise ValueError(f"train config field stage={cfg.stage!r} is invalid here: run stage 2 with owl-train stage2")
    cfg.check_ready()
    check_run_folder(cfg.out, cfg.resume)
    loaded = load_model_dir(cfg.model, merge_lora_weights=True)
    model = set_stage1_trainable(loaded.model, cfg)
    collator = Collator(loaded.tokenizer, data_config(cfg, model.config))
    source = MixStream(Path(cfg.corpus), Path(cfg.mix), num_workers=cfg.num_workers)

    def save_final(module: TrainModule, folder: Path) -> Path:
        return save_model_dir(module.model, folder, loaded.path, prompt=loaded.prompt)

    return train(cfg, TrainModule(model), source, collator, tokenizer_src=loaded.path, save_final=save_final,
                 note=note)
