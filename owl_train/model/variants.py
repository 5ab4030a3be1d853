"""Named presets of the point-grounding options, so a benchmark or ``init-tiny`` picks a variant by name.

Each preset sets *every* option of :data:`~owl_train.model.config.POINT_OPTIONS` (the ones it
does not name keep their "off" value), so applying it gives the same variant whatever config it
starts from. The letters follow issue 9 and DESIGN.md "M-RoPE and the point token":

- ``a_text``: ``<|point|>`` at the next text position, known by its Fourier code only;
- ``b_image``: the point in its image's rotary frame + its Fourier code (Owl-VL before issue 9);
- ``c_interleaved``: (b) with Qwen3-VL's interleaved M-RoPE frequencies;
- ``d_focus``: (b) + local vision features sampled at the point (Ferret, Osprey);
- ``e_fovea``: (b) + a foveal crop around the point in the image's rotary frame (Describe Anything);
- ``f_patch_code``: (b) + the point's Fourier code on every image token at its cell centre;
- combinations name their letters (``cd`` = c + d, ...).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from owl_train.model.config import POINT_OPTIONS, OwlVLConfig

__all__ = ["VARIANTS", "DEFAULT_VARIANT", "apply_variant", "variant_of"]

_A = {"point_placement": "text"}
_C = {"mrope_interleaved": True}
_D = {"point_focus": True}
# crop side 1/8 of the shorter side (32 px of a 512x256 frame, resized to 56: 2x2 merged tokens):
# measured better than 1/4 in benchmarks/point_bench.py (README "Point grounding")
_E = {"foveal_crop": True, "foveal_crop_fraction": 0.125}
_F = {"point_patch_code": True}


def _preset(*parts: dict[str, Any]) -> dict[str, Any]:
    out = dict(POINT_OPTIONS)
    for p in parts:
        out.update(p)
    return out


# name -> the full option overrides of that variant
VARIANTS: dict[str, dict[str, Any]] = {
    "a_text": _preset(_A),
    "b_image": _preset(),
    "c_interleaved": _preset(_C),
    "d_focus": _preset(_D),
    "e_fovea": _preset(_E),
    "f_patch_code": _preset(_F),
    "cd": _preset(_C, _D),
    "ce": _preset(_C, _E),
    "cf": _preset(_C, _F),
    "cde": _preset(_C, _D, _E),
    "cdf": _preset(_C, _D, _F),
    "cdef": _preset(_C, _D, _E, _F),
}
# What ``owl-train init-tiny`` makes unless told otherwise: the best variant measured by
# benchmarks/point_bench.py (README "Point grounding": interleaved M-RoPE + focus features + fovea).
DEFAULT_VARIANT = "cde"


def apply_variant(config: OwlVLConfig, name: str, *, fresh_weights: bool) -> OwlVLConfig:
    """``config`` with the options of preset ``name`` (``dataclasses.replace``; validated).

    ``fresh_weights``: True when the weights will be newly initialised (``init-tiny``); False for
    a trained checkpoint, which then refuses a preset that changes ``mrope_interleaved``: that
    changes the rotary layout the weights learnt.

    Raises:
        ValueError: an unknown name (the known ones are listed), a rotary-layout change of trained
            weights, or an option the config cannot take (e.g. ``foveal_crop`` without
            ``crop_token_id``).
    """
    if name not in VARIANTS:
        raise ValueError(f"unknown model variant {name!r}: use one of {', '.join(VARIANTS)}")
    opts = VARIANTS[name]
    if not fresh_weights and opts["mrope_interleaved"] != config.mrope_interleaved:
        raise ValueError(f"variant {name!r} sets mrope_interleaved={opts['mrope_interleaved']} but the checkpoint "
                         f"was trained with {config.mrope_interleaved}: it changes the rotary layout the weights "
                         "learnt; pick a variant with the checkpoint's value")
    return dataclasses.replace(config, **opts)


def variant_of(config: OwlVLConfig) -> str | None:
    """The preset name whose options ``config`` has, or None (a mix no preset names)."""
    have = {k: getattr(config, k) for k in POINT_OPTIONS}
    return next((n for n, o in VARIANTS.items() if o == have), None)
