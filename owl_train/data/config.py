"""The data path's configuration: one frozen dataclass, validated at construction.

What the *model* fixes (where ``<|point|>`` is placed, the foveal crop) is never set by hand:
:func:`data_config_for_model` copies it from the loaded model's config, and every path that
builds batches for a model (stages 1 and 2, eval, infer) goes through it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from owl_data.conventions.coords import CONVENTIONS
from owl_data.errors import require
from owl_train.model.config import VisionConfig

if TYPE_CHECKING:  # pragma: no cover
    from owl_train.model.config import OwlVLConfig

__all__ = ["DataConfig", "DEFAULT_SYSTEM_PROMPT", "PATCH_SIZE", "MERGE_SIZE", "TEMPORAL_PATCH_SIZE", "FACTOR",
           "data_config_for_model"]

# Qwen2-VL's vision geometry, read from the ViT config's defaults (:class:`VisionConfig`, the one
# place it is written): 14-pixel patches, 2 frames per temporal patch, 2x2 patches merged into one
# LLM token, so one token per 28x28 pixels.
PATCH_SIZE = VisionConfig().patch_size
TEMPORAL_PATCH_SIZE = VisionConfig().temporal_patch_size
MERGE_SIZE = VisionConfig().spatial_merge_size
FACTOR = VisionConfig().merged_patch

# Qwen2-VL's chat template writes this system turn when the conversation has none.
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."


def _check(cond: bool, name: str, value: object, fix: str) -> None:
    """:func:`owl_data.errors.require` with this class's wording, ``"DataConfig.<name>=<value> is invalid: <fix>"``."""
    require(cond, name, value, fix, what="DataConfig.")


@dataclass(frozen=True)
class DataConfig:
    """How rows become token sequences and batches.

    Attributes:
        min_pixels, max_pixels: the resized image's pixel budget (smart resize; one LLM token
            per 28x28 pixels, so ``max_pixels = 28*28*256`` allows 256 image tokens).
        max_length: the longest sequence (tokens) a row, or a packed row, may have.
        box_format: how ``<box>`` is written: ``qwen`` (0-1000 integers with box tokens),
            ``norm`` (decimals in [0, 1]) or ``pixel`` (pixels of the *resized* image, as
            Qwen2.5-VL); see :mod:`owl_data.conventions.coords`.
        pack: concatenate the batch's rows into as few sequences of ``max_length`` as
            first-fit allows (``segment_ids`` keep them apart).
        pad_to_multiple_of: round the batch length up to a multiple of this (None: no rounding).
        num_virtual_tokens: stage 2's P-tuning: N placeholder tokens right after ``<|point|>``
            in a user turn that is exactly ``<image><point>`` (no question). 0: none.
        padding_side: ``right`` (training) or ``left`` (batched generation).
        system_prompt: the system turn written when a row has none (Qwen2-VL's default);
            None writes no system turn for such rows.
        point_placement: ``image`` or ``text``: how positions place ``<|point|>``
            (:func:`owl_train.model.rope.get_rope_index`); the model's ``point_placement``.
        foveal_crop_pixels: 0 (no crop), or the side in pixels (a multiple of 28) of the foveal
            crop written as ``<|crop_pad|>`` tokens right after ``<|point|>``; the model's.
        foveal_crop_fraction: the crop square's side as a fraction of the *original* image's
            shorter side; the model's.
    """

    min_pixels: int = 56 * 56
    max_pixels: int = 28 * 28 * 256
    max_length: int = 1024
    box_format: str = "qwen"
    pack: bool = False
    pad_to_multiple_of: int | None = None
    num_virtual_tokens: int = 0
    padding_side: str = "right"
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT
    point_placement: str = "image"
    foveal_crop_pixels: int = 0
    foveal_crop_fraction: float = 0.25

    def __post_init__(self) -> None:
        _check(isinstance(self.min_pixels, int) and self.min_pixels >= 1, "min_pixels", self.min_pixels,
               "give a positive integer number of pixels (Qwen2-VL's default is 56*56 = 3136)")
        _check(isinstance(self.max_pixels, int) and self.max_pixels >= FACTOR * FACTOR, "max_pixels", self.max_pixels,
               f"give at least {FACTOR}*{FACTOR} = {FACTOR * FACTOR} pixels (one image token)")
        _check(self.max_pixels >= self.min_pixels, "max_pixels", self.max_pixels,
               f"must be >= min_pixels ({self.min_pixels})")
        _check(isinstance(self.max_length, int) and self.max_length >= 8, "max_length", self.max_length,
               "give the longest sequence in tokens (>= 8), e.g. 1024 or 4096")
        _check(self.box_format in CONVENTIONS, "box_format", self.box_format,
               f"use one of {', '.join(CONVENTIONS)}")
        _check(isinstance(self.pack, bool), "pack", self.pack, "use true or false")
        _check(self.pad_to_multiple_of is None or (isinstance(self.pad_to_multiple_of, int)
                                                   and self.pad_to_multiple_of >= 1),
               "pad_to_multiple_of", self.pad_to_multiple_of, "use None or a positive integer such as 8 or 64")
        _check(isinstance(self.num_virtual_tokens, int) and 0 <= self.num_virtual_tokens < self.max_length,
               "num_virtual_tokens", self.num_virtual_tokens, "use 0 (stage 1) or a small count such as 8 or 16")
        _check(self.padding_side in ("right", "left"), "padding_side", self.padding_side, "use right or left")
        _check(self.system_prompt is None or isinstance(self.system_prompt, str), "system_prompt",
               self.system_prompt, "use a string or None")
        _check(self.point_placement in ("image", "text"), "point_placement", self.point_placement,
               "use image or text (take it from the model: data_config_for_model)")
        _check(isinstance(self.foveal_crop_pixels, int) and not isinstance(self.foveal_crop_pixels, bool)
               and self.foveal_crop_pixels >= 0 and self.foveal_crop_pixels % FACTOR == 0, "foveal_crop_pixels",
               self.foveal_crop_pixels, f"use 0 (no crop) or a multiple of {FACTOR}, e.g. 56")
        f = self.foveal_crop_fraction
        _check(isinstance(f, (int, float)) and not isinstance(f, bool) and 0 < f <= 1, "foveal_crop_fraction", f,
               "use a fraction in (0, 1] of the image's shorter side, e.g. 0.25")


def data_config_for_model(cfg: DataConfig, model: "OwlVLConfig") -> DataConfig:
    """``cfg`` with the settings the model fixes taken from its config: ``point_placement`` and
    the foveal crop (``foveal_crop_pixels`` 0 when the model has none, else its size and
    fraction). The one place the data path learns them, so no path can disagree with the model."""
    return dataclasses.replace(
        cfg, point_placement=model.point_placement,
        foveal_crop_pixels=model.foveal_crop_pixels if model.foveal_crop else 0,
        foveal_crop_fraction=float(model.foveal_crop_fraction))
