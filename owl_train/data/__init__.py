"""The data path: corpus rows -> Qwen2-VL chat tokens, images, labels, batches.

config (DataConfig), image (smart resize, Qwen2-VL patches), render (one row -> ids and
labels), collate (padding, packing, M-RoPE positions).
"""

from owl_train.data.collate import Collator, pack_rows
from owl_train.data.config import DEFAULT_SYSTEM_PROMPT, DataConfig
from owl_train.data.image import preprocess_image, resized_size, smart_resize
from owl_train.data.render import IGNORE_INDEX, INLINE_POINT_PHRASE, SpecialTokens

__all__ = ["DataConfig", "Collator", "pack_rows", "smart_resize", "preprocess_image", "resized_size",
           "SpecialTokens", "IGNORE_INDEX", "INLINE_POINT_PHRASE", "DEFAULT_SYSTEM_PROMPT"]
