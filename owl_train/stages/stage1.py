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

from owl_data.errors import FieldError, require
from owl_train.stages.config import WHAT, TrainConfig
from owl_train.data import Collator
from owl_train.data.rows import MixStream
from owl_train.model.model import EXTRA_WEIGHTS, OwlVL
from owl_train.model.point import FocusSampler
from owl_train.model.variants import VARIANTS
from owl_train.stages.lora import apply_lora
from owl_train.stages.loop import LoopResult, Progress
from owl_train.stages.module import TrainModule
from owl_train.stages.run import data_config, open_run, train_stage

__all__ = ["data_config", "set_stage1_trainable", "apply_point_variant", "run_stage1", "VARIANT_SWITCHES"]

# The options a preset switches on loaded weights (the foveal crop's size and fraction stay the model's).
VARIANT_SWITCHES = ("point_placement", "mrope_interleaved", "point_focus", "point_patch_code", "foveal_crop")


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
        FieldError: an unknown preset, or options the model cannot take (e.g. ``point_focus``
            without a ``<|point|>`` token, ``foveal_crop`` without ``crop_token_id``).
    """
    require(name in VARIANTS, "point_variant", name, f"use one of the presets {', '.join(VARIANTS)}", what=WHAT)
    old = model.config
    want = {k: VARIANTS[name][k] for k in VARIANT_SWITCHES}
    if want["mrope_interleaved"] != old.mrope_interleaved:
        note(f"point_variant {name} sets mrope_interleaved={want['mrope_interleaved']}; the checkpoint's "
             f"mrope_interleaved={old.mrope_interleaved} is kept (its weights learnt that rotary layout)")
        want["mrope_interleaved"] = old.mrope_interleaved
    try:
        new = dataclasses.replace(old, **want)
    except ValueError as exc:
        raise FieldError("point_variant", f"{WHAT} point_variant={name!r} does not fit the model: {exc}") from None
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


def run_stage1(cfg: TrainConfig, note: Callable[[str], None] = lambda s: None,
               progress: Progress | None = None) -> LoopResult:
    """Train stage 1 from ``cfg.model`` on ``cfg.mix`` over ``cfg.corpus``; the model lands in ``cfg.out/model``.

    ``note`` takes one-line messages, ``progress`` shows the steps (see :func:`owl_train.stages.loop.train`).
    """
    loaded = open_run(cfg, "stage1")
    model = loaded.model
    if cfg.point_variant is not None:  # before the trainable set, so new weights train (and resume the same)
        model = apply_point_variant(model, cfg.point_variant, seed=cfg.seed, note=note)
    model = set_stage1_trainable(model, cfg)
    collator = Collator(loaded.tokenizer, data_config(cfg, model.config))
    source = MixStream(Path(cfg.corpus), Path(cfg.mix), num_workers=cfg.num_workers)
    return train_stage(cfg, loaded, TrainModule(model), source, collator, prompt=loaded.prompt, note=note,
                       progress=progress)
