"""owl_train: the Owl-VL trainer.

``owl_train.model`` is a compact Qwen2-VL-layout vision-language model with M-RoPE and a point
token placed in the image's rotary frame; ``owl_train.data`` renders corpus rows for it;
``owl_train.stages`` trains it (stage 1 on the mix, stage 2 P-tuning).
"""

__version__ = "0.1.0"
