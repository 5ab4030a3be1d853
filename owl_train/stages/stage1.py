"""Stage 1: continued pretraining on the task mix (the paper's 5:1:2:2).

The vision encoder is frozen (``freeze_vision``); the projector (the ViT's patch merger,
``train_projector``) and the language model are trained, fully (``tune: full``: decoder,
LM head and the point encoder) or with LoRA on the decoder's linear layers (``tune: lora``:
LoRA weights, the point encoder, the focus sampler and the projector train; everything else is
frozen). ``freeze_vision: false`` trains the whole vision tower (the tiny model may need it to
see thin objects).
``point_variant`` (a preset of :data:`owl_train.model.variants.VARIANTS`) switches the loaded
model's point-grounding options before training (:func:`apply_point_variant`); the saved model's
``config.json`` carries them, so stage 2, eval and infer read the same.
The final model folder holds the base weights plus, for LoRA, the adapter (``owl-train merge``
folds it in).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from owl_train.config import TrainConfig
from owl_train.data import Collator, DataConfig, data_config_for_model
from owl_train.model.config import OwlVLConfig
from owl_train.model.model import EXTRA_WEIGHTS, OwlVL
from owl_train.model.point import FocusSampler
from owl_train.model.variants import VARIANTS
from owl_train.stages.checkpoints import check_run_folder, load_model_dir, save_model_dir
from owl_train.stages.lora import apply_lora
from owl_train.stages.loop import LoopResult, train
from owl_train.stages.module import TrainModule
from owl_train.data.rows import MixStream

__all__ = ["data_config", "set_stage1_trainable", "apply_point_variant", "run_stage1", "VARIANT_SWITCHES"]

# The options a preset switches on loaded weights (the foveal crop's size and fraction stay the model's).
VARIANT_SWITCHES = ("point_placement", "mrope_interleaved", "point_focus", "point_patch_code", "foveal_crop")


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


def apply_point_variant(model: OwlVL, name: str, *, seed: int = 0,
                        note: Callable[[str], None] = lambda s: None) -> OwlVL:
    """``model`` (in place) with the point-grounding switches of preset ``name``, for loaded weights.

    - ``mrope_interleaved`` is never changed: it is the rotary layout the weights learnt; when the
      preset's value differs, the checkpoint's stays and ``note`` says so.
    - ``point_focus`` switched on creates the focus sampler (first layer drawn from ``seed``, last
      layer zero), so the model computes what it computed before until training moves it;
      switched off drops the sampler's weights (noted).
    - ``point_placement``, ``point_patch_code`` and ``foveal_crop`` change the config only (they add no
      weights; the crop keeps the model's ``foveal_crop_fraction``/``foveal_crop_pixels``).

    Raises:
        ValueError: an unknown preset, or options the model cannot take (e.g. ``point_focus``
            without a ``<|point|>`` token, ``foveal_crop`` without ``crop_token_id``).
    """
    if name not in VARIANTS:
        raise ValueError(f"train config field point_variant={name!r} is invalid: use one of the presets "
                         f"{', '.join(VARIANTS)}")
    old = model.config
    want = {k: VARIANTS[name][k] for k in VARIANT_SWITCHES}
    if want["mrope_interleaved"] != old.mrope_interleaved:
        note(f"point_variant {name} sets mrope_interleaved={want['mrope_interleaved']}; the checkpoint's "
             f"mrope_interleaved={old.mrope_interleaved} is kept (its weights learnt that rotary layout)")
        want["mrope_interleaved"] = old.mrope_interleaved
    try:
        new = dataclasses.replace(old, **want)
    except ValueError as exc:
        raise ValueError(f"train config field point_variant={name!r} does not fit the model: {exc}") from None
    changed = [k for k in VARIANT_SWITCHES if getattr(new, k) != getattr(old, k)]
    if not changed:
        return model
    ref = next(model.parameters())
    if new.point_focus and model.point_focus is None:
        model.point_focus = FocusSampler(new.vision, new.text.hidden_size, seed=seed).to(device=ref.device,
                                                                                          dtype=ref.dtype)
    elif not new.point_focus and model.point_focus is not None:
        model.point_focus = None
        note(f"point_variant {name}: point_focus off, the model's focus-sampler weights are dropped")
    model.config = new
    note(f"point_variant {name}: " + ", ".join(f"{k} {getattr(old, k)} -> {getattr(new, k)}" for k in changed))
    return model


def run_stage1(cfg: TrainConfig, note: Callable[[str], None] = lambda s: None) -> LoopResult:
    """Train stage 1 from ``cfg.model`` on ``cfg.mix`` over ``cfg.corpus``; the model lands in ``cfg.out/model``."""
    if cfg.stage != "stage1":
        raise ValueError(f"train config field stage={cfg.stage!r} is invalid here: run stage 2 with owl-train stage2")
    cfg.check_ready()
    check_run_folder(cfg.out, cfg.resume)
    loaded = load_model_dir(cfg.model, merge_lora_weights=True)
    model = loaded.model
    if cfg.point_variant is not None:  # before the trainable set, so new weights train (and resume the same)
        model = apply_point_variant(model, cfg.point_variant, seed=cfg.seed, note=note)
    model = set_stage1_trainable(model, cfg)
    collator = Collator(loaded.tokenizer, data_config(cfg, model.config))
    source = MixStream(Path(cfg.corpus), Path(cfg.mix), num_workers=cfg.num_workers)

    def save_final(module: TrainModule, folder: Path) -> Path:
        return save_model_dir(module.model, folder, loaded.path, prompt=loaded.prompt)

    return train(cfg, TrainModule(model), source, collator, tokenizer_src=loaded.path, save_final=save_final,
                 note=note)
