"""Model configuration: frozen dataclasses that read and write a Qwen2-VL ``config.json``.

Two on-disk layouts exist (transformers ``models/qwen2_vl/configuration_qwen2_vl.py``):

- transformers 4.x: text fields at the top level, M-RoPE in ``rope_scaling``
  (``{"type": "mrope", "mrope_section": [16, 24, 24]}``) and ``rope_theta`` beside it;
  the vision config may spell ``in_chans`` for ``in_channels``;
- transformers 5.x: text fields under ``text_config``, M-RoPE in ``rope_parameters``
  (``{"rope_type": "default", "mrope_section": [...], "rope_theta": ...}``).

Both are read; we write the 5.x layout (which 4.x-era readers of ``text_config`` also accept).
Our own extras are extra top-level keys, which transformers keeps as plain attributes and
otherwise ignores: ``point_token_id``, ``point_fourier_bands`` and the point-grounding options
(:data:`POINT_OPTIONS`: ``point_placement``, ``mrope_interleaved``, ``point_focus``,
``point_patch_code``, ``foveal_crop`` with ``foveal_crop_fraction``/``foveal_crop_pixels`` and
``crop_token_id``). An option is written only when it differs from its default, so a plain
Qwen2-VL ``config.json`` reads back with every option off (and logits equal transformers').
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from owl_data.errors import require


# The point-grounding options and their "off" values (a plain Qwen2-VL config gives these).
POINT_OPTIONS: dict[str, Any] = {
    "point_placement": "image",
    "mrope_interleaved": False,
    "point_focus": False,
    "point_patch_code": False,
    "foveal_crop": False,
    "foveal_crop_fraction": 0.25,
    "foveal_crop_pixels": 56,
}


@dataclass(frozen=True)
class VisionConfig:
    """The Qwen2-VL ViT: 3-D patch embedding, ``depth`` 2-D rotary blocks, 2x2 patch merger."""

    depth: int = 32
    embed_dim: int = 1280
    num_heads: int = 16
    mlp_ratio: float = 4.0
    hidden_act: str = "quick_gelu"
    in_channels: int = 3
    patch_size: int = 14
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    out_dim: int = 3584  # the merger's output width (== text hidden size); HF calls it hidden_size
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        require(self.embed_dim % self.num_heads == 0, "vision.embed_dim", self.embed_dim,
               "must be divisible by vision.num_heads")
        require((self.embed_dim // self.num_heads) % 4 == 0, "vision.num_heads", self.num_heads,
               "head width must be a multiple of 4 (2-D rotary over h and w)")
        require(self.hidden_act in ("quick_gelu", "gelu", "gelu_pytorch_tanh", "silu"),
               "vision.hidden_act", self.hidden_act, "use quick_gelu, gelu, gelu_pytorch_tanh or silu")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def merged_patch(self) -> int:
        """Pixels per side of one LLM image token: patch_size * spatial_merge_size (28 for Qwen2-VL)."""
        return self.patch_size * self.spatial_merge_size

    @property
    def patch_dim(self) -> int:
        """Values per ``pixel_values`` row: C * temporal_patch * patch * patch (1176 for Qwen2-VL)."""
        return self.in_channels * self.temporal_patch_size * self.patch_size ** 2


# a crop side must be a multiple of one merged token (the default ViT's: patch 14 x merge 2 = 28 pixels)
CROP_FACTOR = VisionConfig().merged_patch


@dataclass(frozen=True)
class TextConfig:
    """The Qwen2 decoder: RMSNorm, SwiGLU, GQA, M-RoPE over ``mrope_section`` chunks."""

    vocab_size: int = 152064
    hidden_size: int = 3584
    intermediate_size: int = 18944
    num_hidden_layers: int = 28
    num_attention_heads: int = 28
    num_key_value_heads: int = 4
    hidden_act: str = "silu"
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1000000.0
    mrope_section: tuple[int, int, int] = (16, 24, 24)
    max_position_embeddings: int = 32768
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None

    def __post_init__(self) -> None:
        require(self.hidden_size % self.num_attention_heads == 0, "text.hidden_size", self.hidden_size,
               "must be divisible by text.num_attention_heads")
        require(self.num_attention_heads % self.num_key_value_heads == 0, "text.num_key_value_heads",
               self.num_key_value_heads, "must divide text.num_attention_heads")
        require(len(self.mrope_section) == 3 and sum(self.mrope_section) == self.head_dim // 2,
               "text.mrope_section", self.mrope_section,
               f"needs three chunks summing to head_dim/2 = {self.head_dim // 2}")
        require(self.hidden_act == "silu", "text.hidden_act", self.hidden_act, "Qwen2 uses silu")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


@dataclass(frozen=True)
class OwlVLConfig:
    """Everything the model needs; ``from_hf_dict``/``to_hf_dict`` convert to ``config.json``.

    The point-grounding options (each off by default, so a plain Qwen2-VL config gives none):

    - ``point_placement``: ``"image"`` puts ``<|point|>`` in its image's rotary frame at (x, y);
      ``"text"`` gives it the next text position (t = h = w), known only by its Fourier code.
    - ``mrope_interleaved``: M-RoPE frequencies interleaved t, h, w as Qwen3-VL does, instead of
      Qwen2-VL's chunks (:func:`owl_train.model.decoder.mrope_axes`). It changes the rotary
      layout the weights learnt: a checkpoint keeps its stored value; never switch it on for
      weights trained without it (:func:`owl_train.model.variants.apply_variant` refuses).
    - ``point_focus``: the point embedding adds local vision features sampled at (x, y)
      (Ferret's spatial-aware visual sampler, Osprey's mask pooling;
      :class:`owl_train.model.point.FocusSampler`).
    - ``point_patch_code``: the point's Fourier code (the same weights) added to every image
      token at its merged-patch centre, so point and patches share one coordinate system.
    - ``foveal_crop``: a square crop of ``foveal_crop_fraction`` of the image's shorter side
      around the point, resized to ``foveal_crop_pixels`` square, encoded by the same ViT and
      placed as ``crop_token_id`` tokens right after ``<|point|>`` in the image's rotary frame
      (Describe Anything's focal prompt).
    """

    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    image_token_id: int = 151655
    video_token_id: int = 151656
    vision_start_token_id: int = 151652
    vision_end_token_id: int = 151653
    tie_word_embeddings: bool = False
    point_token_id: int | None = None  # None: a plain Qwen2-VL, no point token
    point_fourier_bands: int = 8  # Fourier features of (x, y): 4 * bands values
    dtype: str = "float32"
    # -- point-grounding options (DESIGN.md "M-RoPE and the point token"; all off by default) --
    point_placement: str = "image"
    mrope_interleaved: bool = False
    point_focus: bool = False
    point_patch_code: bool = False
    foveal_crop: bool = False
    foveal_crop_fraction: float = 0.25
    foveal_crop_pixels: int = 56
    crop_token_id: int | None = None  # ``<|crop_pad|>``: the foveal crop's placeholder

    def __post_init__(self) -> None:
        require(self.vision.out_dim == self.text.hidden_size, "vision.out_dim", self.vision.out_dim,
               f"must equal text.hidden_size = {self.text.hidden_size}")
        for name in ("image_token_id", "vision_start_token_id", "vision_end_token_id"):
            v = getattr(self, name)
            require(0 <= v < self.text.vocab_size, name, v, f"must be a token id below vocab_size {self.text.vocab_size}")
        if self.point_token_id is not None:
            require(0 <= self.point_token_id < self.text.vocab_size, "point_token_id", self.point_token_id,
                   f"must be a token id below vocab_size {self.text.vocab_size}")
        require(self.point_fourier_bands >= 1, "point_fourier_bands", self.point_fourier_bands, "must be >= 1")
        require(self.point_placement in ("image", "text"), "point_placement", self.point_placement,
               "use 'image' (the point in its image's rotary frame) or 'text' (the next text position)")
        for name in ("mrope_interleaved", "point_focus", "point_patch_code", "foveal_crop"):
            require(isinstance(getattr(self, name), bool), name, getattr(self, name), "use true or false")
        for name in ("point_focus", "point_patch_code", "foveal_crop"):
            require(not getattr(self, name) or self.point_token_id is not None, name, getattr(self, name),
                   "needs point_token_id (a model with a <|point|> token)")
        f = self.foveal_crop_fraction
        require(isinstance(f, (int, float)) and not isinstance(f, bool) and 0 < f <= 1, "foveal_crop_fraction", f,
               "give the crop side as a fraction in (0, 1] of the image's shorter side, e.g. 0.25")
        px = self.foveal_crop_pixels
        require(isinstance(px, int) and not isinstance(px, bool) and px >= CROP_FACTOR and px % CROP_FACTOR == 0,
               "foveal_crop_pixels", px, f"give a multiple of {CROP_FACTOR} (one merged token), e.g. 56 or 112")
        if self.crop_token_id is not None:
            require(0 <= self.crop_token_id < self.text.vocab_size and self.crop_token_id not in (
                self.image_token_id, self.point_token_id), "crop_token_id", self.crop_token_id,
                f"must be its own token id below vocab_size {self.text.vocab_size}")
        require(not self.foveal_crop or self.crop_token_id is not None, "foveal_crop", self.foveal_crop,
               "needs crop_token_id (the <|crop_pad|> token of an Owl-VL tokenizer)")

    # -- config.json ---------------------------------------------------------------------
    @classmethod
    def from_hf_dict(cls, d: dict[str, Any]) -> "OwlVLConfig":
        """Read a Qwen2-VL ``config.json`` dict (transformers 4.x or 5.x layout)."""
        require(d.get("model_type") in (None, "qwen2_vl"), "model_type", d.get("model_type"), "expected 'qwen2_vl'")
        t = dict(d.get("text_config") or {})
        for k, v in d.items():  # 4.x: text fields at the top level
            if k not in ("text_config", "vision_config") and k not in t:
                t[k] = v
        rope = t.get("rope_parameters") or t.get("rope_scaling") or {}
        rtype = rope.get("rope_type", rope.get("type", "default"))
        require(rtype in ("default", "mrope"), "rope_type", rtype, "only default M-RoPE is supported")
        require(not t.get("use_sliding_window"), "use_sliding_window", True,
                "sliding-window attention is not implemented; set it to false")
        text_names = {f.name for f in fields(TextConfig)}
        tkw = {k: t[k] for k in text_names if k in t and t[k] is not None}
        td, vd, od = TextConfig, VisionConfig, cls  # the field defaults: what a key left out means
        tkw["rope_theta"] = float(rope.get("rope_theta", t.get("rope_theta", td.rope_theta)))
        tkw["mrope_section"] = tuple(rope.get("mrope_section", td.mrope_section))
        v = dict(d.get("vision_config") or {})
        vkw = {
            "depth": v.get("depth", vd.depth), "embed_dim": v.get("embed_dim", vd.embed_dim),
            "num_heads": v.get("num_heads", vd.num_heads), "mlp_ratio": float(v.get("mlp_ratio", vd.mlp_ratio)),
            "hidden_act": v.get("hidden_act", vd.hidden_act),
            "in_channels": v.get("in_channels", v.get("in_chans", vd.in_channels)),
            "patch_size": v.get("patch_size", v.get("spatial_patch_size", vd.patch_size)),
            "temporal_patch_size": v.get("temporal_patch_size", vd.temporal_patch_size),
            "spatial_merge_size": v.get("spatial_merge_size", vd.spatial_merge_size),
            "out_dim": v.get("hidden_size", tkw.get("hidden_size", td.hidden_size)),
            "rope_theta": float((v.get("rope_parameters") or {}).get("rope_theta", vd.rope_theta)),
        }
        tie = d.get("tie_word_embeddings", t.get("tie_word_embeddings", od.tie_word_embeddings))
        return cls(
            vision=VisionConfig(**vkw), text=TextConfig(**tkw),
            image_token_id=d.get("image_token_id", od.image_token_id),
            video_token_id=d.get("video_token_id", od.video_token_id),
            vision_start_token_id=d.get("vision_start_token_id", od.vision_start_token_id),
            vision_end_token_id=d.get("vision_end_token_id", od.vision_end_token_id),
            tie_word_embeddings=bool(tie), point_token_id=d.get("point_token_id"),
            point_fourier_bands=d.get("point_fourier_bands", od.point_fourier_bands),
            dtype=str(d.get("dtype") or d.get("torch_dtype") or t.get("dtype") or "float32"),
            crop_token_id=d.get("crop_token_id"),
            **{k: d.get(k, v) for k, v in POINT_OPTIONS.items()},
        )

    def to_hf_dict(self) -> dict[str, Any]:
        """A transformers 5.x ``config.json`` dict (Qwen2VLForConditionalGeneration loads it)."""
        t = asdict(self.text)
        t.pop("rope_theta"), t.pop("mrope_section")
        t.update(model_type="qwen2_vl_text", use_sliding_window=False, attention_dropout=0.0,
                 rope_parameters={"rope_type": "default", "rope_theta": self.text.rope_theta,
                                  "mrope_section": list(self.text.mrope_section)},
                 tie_word_embeddings=self.tie_word_embeddings)
        vc = self.vision
        v = {"model_type": "qwen2_vl_vision", "depth": vc.depth, "embed_dim": vc.embed_dim,
             "num_heads": vc.num_heads, "mlp_ratio": vc.mlp_ratio if vc.mlp_ratio % 1 else int(vc.mlp_ratio),
             "hidden_act": vc.hidden_act, "in_channels": vc.in_channels, "patch_size": vc.patch_size,
             "temporal_patch_size": vc.temporal_patch_size, "spatial_merge_size": vc.spatial_merge_size,
             "hidden_size": vc.out_dim, "rope_parameters": {"rope_type": "axial", "rope_theta": vc.rope_theta}}
        d: dict[str, Any] = {
            "architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl",
            "text_config": t, "vision_config": v, "image_token_id": self.image_token_id,
            "video_token_id": self.video_token_id, "vision_start_token_id": self.vision_start_token_id,
            "vision_end_token_id": self.vision_end_token_id, "tie_word_embeddings": self.tie_word_embeddings,
            "dtype": self.dtype, "point_fourier_bands": self.point_fourier_bands,
        }
        if self.point_token_id is not None:
            d["point_token_id"] = self.point_token_id
        if self.crop_token_id is not None:
            d["crop_token_id"] = self.crop_token_id
        d.update({k: getattr(self, k) for k, v in POINT_OPTIONS.items() if getattr(self, k) != v})
        return d

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "OwlVLConfig":
        p = Path(path)
        f = p / "config.json" if p.is_dir() else p
        try:
            d = json.loads(f.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{f} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(d, dict) or d.get("model_type") != "qwen2_vl":
            got = d.get("model_type") if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"{f} is not a Qwen2-VL model config (model_type={got!r}, expected 'qwen2_vl')")
        return cls.from_hf_dict(d)
