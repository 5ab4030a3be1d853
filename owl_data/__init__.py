"""owl_data: the Owl-VL data engine (point-guided VQA corpus builder)."""

__version__ = "0.1.0"
