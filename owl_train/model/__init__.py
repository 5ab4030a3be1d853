"""The Owl-VL model: Qwen2-VL architecture (ViT + M-RoPE Qwen2 decoder) plus the point token.

config (dataclasses <-> config.json), rope (pure position ids), vision, decoder, attention
(SDPA / flash-attn dispatch), point (what the point token adds: Fourier code, focus sampler,
patch code), model (OwlVL), variants (named presets of the point-grounding options), checkpoint
(HF layout), generate, tokenizer, tiny.
"""

from owl_train.model.checkpoint import load_pretrained, save_pretrained
from owl_train.model.config import OwlVLConfig, TextConfig, VisionConfig
from owl_train.model.generate import generate
from owl_train.model.model import OwlVL, OwlVLOutput
from owl_train.model.rope import get_rope_index

__all__ = ["OwlVL", "OwlVLOutput", "OwlVLConfig", "TextConfig", "VisionConfig", "get_rope_index",
           "load_pretrained", "save_pretrained", "generate"]
