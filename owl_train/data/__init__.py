"""The data path: corpus rows -> Qwen2-VL chat tokens, images, labels, batches.

- config: DataConfig, data_config_for_model (the settings a model fixes come from its config);
- image: smart resize, Qwen2-VL patches, foveal crops;
- tokens: the special token ids and the piece builder; render: one row -> ids and labels;
- collate: padding, packing, M-RoPE positions;
- rows, mix_dataset: where rows come from (mixes, corpus splits); lexicon: which category a text names.
"""

from owl_train.data.collate import Collator, pack_rows
from owl_train.data.config import DEFAULT_SYSTEM_PROMPT, DataConfig, data_config_for_model
from owl_train.data.image import foveal_box, preprocess_crop, preprocess_image, resized_size, smart_resize
from owl_train.data.render import IGNORE_INDEX, INLINE_POINT_PHRASE
from owl_train.data.tokens import SpecialTokens

__all__ = ["DataConfig", "data_config_for_model", "Collator", "pack_rows", "smart_resize", "preprocess_image",
           "preprocess_crop", "foveal_box", "resized_size", "SpecialTokens", "IGNORE_INDEX", "INLINE_POINT_PHRASE",
           "DEFAULT_SYSTEM_PROMPT"]
