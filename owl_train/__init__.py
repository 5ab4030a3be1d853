"""owl_train: the Owl-VL trainer (M-RoPE vision-language model, two training stages).

The model, data path and stages are built by their own issues; this package currently
holds the command-line entry point only.
"""

__version__ = "0.1.0"
