"""``owl-train init-tiny``: a tiny random Owl-VL (Qwen2-VL layout) with its tokenizer, for tests and demos."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from owl_train.model.checkpoint import save_pretrained
from owl_train.model.config import POINT_OPTIONS, OwlVLConfig, TextConfig, VisionConfig
from owl_train.model.model import OwlVL
from owl_train.model.tokenizer import SPECIAL_TOKENS, train_tokenizer
from owl_train.model.variants import DEFAULT_VARIANT, apply_variant

__all__ = ["tiny_config", "init_tiny"]


def tiny_config(ids: dict[str, int], vocab_size: int, variant: str = "b_image",
                options: Mapping[str, Any] | None = None) -> OwlVLConfig:
    """Vision depth 2 / width 32 / 2 heads; text width 64, 2 layers, 4 heads, 2 KV heads (Dh 16),
    with the point-grounding options of preset ``variant`` (:data:`~owl_train.model.variants.VARIANTS`),
    then ``options`` (e.g. ``{"foveal_crop_pixels": 112}``) over it.

    Raises:
        ValueError: an unknown variant name, a key that is not a point-grounding option, a bad value.
    """
    base = OwlVLConfig(
        vision=VisionConfig(depth=2, embed_dim=32, num_heads=2, mlp_ratio=4.0, out_dim=64),
        text=TextConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=10000.0,
                        mrope_section=(2, 3, 3), max_position_embeddings=4096,
                        eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        point_token_id=ids["<|point|>"], crop_token_id=ids["<|crop_pad|>"], point_fourier_bands=8,
        tie_word_embeddings=False,
    )
    cfg = apply_variant(base, variant, fresh_weights=True)
    bad = sorted(set(options or {}) - set(POINT_OPTIONS))
    if bad:
        raise ValueError(f"{', '.join(bad)}: not point-grounding options; use keys among {', '.join(POINT_OPTIONS)}")
    return dataclasses.replace(cfg, **(options or {}))


def init_tiny(out_dir: str | Path, vocab_from: str | Path | None = None, seed: int = 0,
              vocab_size: int = 1024, variant: str = DEFAULT_VARIANT,
              options: Mapping[str, Any] | None = None) -> Path:
    """Write tokenizer + config + random weights to ``out_dir``; returns it.

    ``vocab_from``: a UTF-8 text file to train the tokenizer on instead of the built-in text.
    ``variant``: the point-grounding preset (default :data:`~owl_train.model.variants.DEFAULT_VARIANT`);
    the weights every variant shares are the same for one ``seed``. ``options``: option values
    over the preset (:func:`tiny_config`), e.g. a larger foveal crop.

    Raises:
        ValueError: an unknown variant or a bad option (checked before anything is written).
    """
    tiny_config({t: i for i, t in enumerate(SPECIAL_TOKENS)}, vocab_size, variant, options)  # validate first
    out = Path(out_dir)
    text = Path(vocab_from).read_text(encoding="utf-8") if vocab_from is not None else None
    ids = train_tokenizer(out, text, vocab_size=vocab_size)
    model = OwlVL(tiny_config(ids, ids["__vocab_size__"], variant, options)).reset_parameters(seed)
    return save_pretrained(model, out)
