"""One corpus row -> token ids, labels and vision inputs, in the Qwen2-VL chat format.

Rendering (transformers ``models/qwen2_vl`` chat template and processor)::

    <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n          (when the row has none)
    <|im_start|>user\n<|vision_start|><|image_pad|>*n<|vision_end|><|point|>Question<|im_end|>\n
    <|im_start|>assistant\nAnswer<|im_end|>\n

- ``<image>`` -> ``<|vision_start|>`` + T*H'*W' ``<|image_pad|>`` + ``<|vision_end|>``; the images
  are the row's ``image`` (one PIL image, or a list), in placeholder order.
- ``<point>`` in a user (or system) turn -> ``<|point|>`` placed right after its image's
  ``<|vision_end|>`` (its image: the last one placed before the first ``<point>``, else the
  first). ``<image><point>`` (whitespace between them ignored) is the canonical form; any other
  ``<point>`` in user text (DriveLM: ``<image>Is <point> a traffic sign?``) is replaced by
  :data:`INLINE_POINT_PHRASE` while the token still goes right after the image. In an assistant
  turn ``<point>`` is the point as text in ``box_format`` (an answer that points).
- ``<box>`` -> the row's ``bbox`` as text through :mod:`owl_data.conventions.coords` in
  ``cfg.box_format``; in assistant turns of ``qwen`` the row's ``expression`` (when present)
  is written as the object reference before it. ``pixel`` uses the resized image's pixels.
- Foveal crop (``cfg.foveal_crop_pixels`` > 0, variant (e)): ``<|point|>`` is followed by
  (pixels / 28)² ``<|crop_pad|>`` tokens; the crop's patches are cut from the original image
  (:func:`~owl_train.data.image.preprocess_crop`) and go into ``pixel_values``/``image_grid_thw``
  right after its image's (reading order), its square into ``crop_boxes``.
- Stage 2: a user turn that is exactly ``<image><point>`` gets ``cfg.num_virtual_tokens`` pad
  tokens right after ``<|point|>`` (after the crop tokens, if any) (``virtual_mask`` True; text
  positions).

Labels come from the same tokenisation as the ids: the row is tokenised piece by piece (text
runs between special tokens), each piece's ids are appended with its supervision flag, and
nothing is ever re-tokenised. Supervised: the content of assistant turns and their
``<|im_end|>``; never the role headers, the ``\\n`` after ``<|im_end|>``, image, point, crop or
virtual tokens.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from owl_data.conventions.coords import render_box, render_point
from owl_train.data.config import FACTOR, MERGE_SIZE, DataConfig
from owl_train.data.image import preprocess_crop, preprocess_image, resized_size

__all__ = ["SpecialTokens", "TokenizerAdapter", "DropRow", "encode_row", "INLINE_POINT_PHRASE", "IGNORE_INDEX",
           "RESERVED_TOKENS"]

IGNORE_INDEX = -100
INLINE_POINT_PHRASE = "the object at the point"
# structural tokens that row text must not contain (they would forge turns, images or points)
RESERVED_TOKENS = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                   "<|video_pad|>", "<|point|>", "<|crop_pad|>", "<|endoftext|>")
_PLACEHOLDER = re.compile(r"(<image>|<point>|<box>)")
_IMAGE_POINT = re.compile(r"<image>\s*<point>")
_ROLES = ("system", "user", "assistant")


class DropRow(Exception):
    """A row the data path does not use; ``reason`` is counted in ``Collator.dropped``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of the Qwen2-VL special tokens the data path writes (and ``<|point|>``,
    ``<|crop_pad|>``: None for a tokenizer without it, which then cannot make foveal crops)."""

    im_start: int
    im_end: int
    vision_start: int
    vision_end: int
    image_pad: int
    point: int
    pad: int  # padding and stage-2 virtual placeholders (the tokenizer's pad, else <|endoftext|>)
    crop_pad: int | None = None


class TokenizerAdapter:
    """The two calls the data path needs from a tokenizer: a transformers
    ``PreTrainedTokenizerFast`` (or any object with ``encode(text, add_special_tokens=False)``
    returning ids) or a bare ``tokenizers.Tokenizer``."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._bare = type(tokenizer).__module__.startswith("tokenizers")
        vocab = tokenizer.get_vocab()
        need = {"<|im_start|>": "im_start", "<|im_end|>": "im_end", "<|vision_start|>": "vision_start",
                "<|vision_end|>": "vision_end", "<|image_pad|>": "image_pad", "<|point|>": "point"}
        missing = [t for t in need if t not in vocab]
        if missing:
            raise ValueError(f"tokenizer lacks the special token(s) {', '.join(missing)}: use an Owl-VL tokenizer "
                             "(owl-train init-tiny) or add them as special tokens and resize the embeddings")
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = vocab.get("<|endoftext|>")
        if pad is None:
            raise ValueError("tokenizer has no pad token and no <|endoftext|>: set tokenizer.pad_token")
        self.special = SpecialTokens(**{v: vocab[k] for k, v in need.items()}, pad=int(pad),
                                     crop_pad=vocab.get("<|crop_pad|>"))

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        if self._bare:
            return list(self.tokenizer.encode(text, add_special_tokens=False).ids)
        return list(self.tokenizer.encode(text, add_special_tokens=False))


class _Builder:
    """Appends pieces; text runs with one supervision flag are tokenised once, when flushed."""

    def __init__(self, tok: TokenizerAdapter) -> None:
        self.tok = tok
        self.ids: list[int] = []
        self.sup: list[bool] = []
        self.virtual: list[bool] = []
        self._text: list[str] = []
        self._text_sup = False

    def text(self, s: str, sup: bool) -> None:
        if self._text and sup != self._text_sup:
            self.flush()
        self._text.append(s)
        self._text_sup = sup

    def flush(self) -> None:
        if self._text:
            ids = self.tok.encode("".join(self._text))
            self.ids += ids
            self.sup += [self._text_sup] * len(ids)
            self.virtual += [False] * len(ids)
            self._text = []

    def token(self, tid: int, n: int = 1, sup: bool = False, virtual: bool = False) -> None:
        self.flush()
        self.ids += [tid] * n
        self.sup += [sup] * n
        self.virtual += [virtual] * n


def _unit(values: Sequence[Any]) -> list[float] | None:
    """``values`` as floats when every one is a finite real number in [0, 1], else None."""
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= 1:
            return None
        out.append(float(v))
    return out


def _point_of(row: Mapping[str, Any]) -> tuple[float, float] | None:
    """The row's normalised (x, y), None when it has none.

    Raises:
        DropRow: ``bad_point``: not two finite numbers in [0, 1].
    """
    p = row.get("point")
    if p is None:
        return None
    if isinstance(p, Mapping):
        p = (p.get("x"), p.get("y"))
    xy = _unit(p) if isinstance(p, Sequence) and not isinstance(p, str) and len(p) == 2 else None
    if xy is None:
        raise DropRow("bad_point")
    return xy[0], xy[1]


def _bbox_of(row: Mapping[str, Any]) -> list[float] | None:
    """The row's normalised xyxy box, None when it has none.

    Raises:
        DropRow: ``bad_box``: not four finite numbers in [0, 1] with x0 <= x1 and y0 <= y1.
    """
    b = row.get("bbox")
    if b is None:
        return None
    box = _unit(b) if isinstance(b, Sequence) and not isinstance(b, str) and len(b) == 4 else None
    if box is None or box[0] > box[2] or box[1] > box[3]:
        raise DropRow("bad_box")
    return box


def _images_of(row: Mapping[str, Any]) -> list[Image.Image]:
    """Raises DropRow ``bad_image`` for anything that is not a PIL image."""
    img = row.get("image")
    if img is None:
        return []
    imgs = list(img) if isinstance(img, (list, tuple)) else [img]
    if not all(isinstance(im, Image.Image) for im in imgs):
        raise DropRow("bad_image")
    return imgs


def _join(parts: list[torch.Tensor]) -> torch.Tensor | None:
    """Concatenate (no copy for one part); None for none."""
    return None if not parts else parts[0] if len(parts) == 1 else torch.cat(parts)


def encode_row(row: Mapping[str, Any], tok: TokenizerAdapter, cfg: DataConfig,
               add_generation_prompt: bool = False) -> dict[str, Any]:
    """Encode one row (see the module docstring); raises :class:`DropRow` with a reason.

    Returns:
        input_ids (L,) int64, labels (L,) int64 (-100 unsupervised), virtual_mask (L,) bool,
        pixel_values (N, 1176) float32 | None, image_grid_thw (n_img, 3) int64 | None,
        points (n_pt, 2) float32 (x, y) in [0, 1], crop_boxes (n_crop, 4) float32 (x0, y0, x1, y1)
        in [0, 1] of the crop's image, id, task. ``pixel_values``/``image_grid_thw`` hold the
        images and crops in reading order.

    Raises:
        ValueError: a foveal crop is configured but the tokenizer has no ``<|crop_pad|>``.
    """
    sp = tok.special
    crop_px = cfg.foveal_crop_pixels
    if crop_px and sp.crop_pad is None:
        raise ValueError("DataConfig.foveal_crop_pixels is set but the tokenizer has no <|crop_pad|> token: "
                         "use the model's own tokenizer (owl-train init-tiny writes it)")
    turns = row.get("conversations")
    if not isinstance(turns, Sequence) or not turns or not all(
            isinstance(t, Mapping) and t.get("role") in _ROLES and isinstance(t.get("content"), str) for t in turns):
        raise DropRow("bad_conversation")
    turns = [{"role": t["role"], "content": _IMAGE_POINT.sub("<image><point>", t["content"])} for t in turns]
    if any(r in t["content"] for t in turns for r in RESERVED_TOKENS):
        raise DropRow("special_token_in_text")
    if any(t["role"] == "assistant" and not t["content"].strip() for t in turns):
        raise DropRow("empty_answer")  # it would teach the model to end its turn at once
    if turns[0]["role"] != "system" and cfg.system_prompt is not None:
        turns.insert(0, {"role": "system", "content": cfg.system_prompt})

    images = _images_of(row)
    n_placeholders = sum(t["content"].count("<image>") for t in turns)
    if n_placeholders != len(images):
        raise DropRow("image_mismatch")
    if any("<image>" in t["content"] for t in turns if t["role"] == "assistant"):
        raise DropRow("image_in_assistant")
    pixel_values, grids, sizes = [], [], []
    for im in images:
        try:
            pv, g = preprocess_image(im, cfg)
        except (ValueError, OSError):  # aspect ratio > 200, empty, undecodable or truncated image data
            raise DropRow("bad_image") from None
        pixel_values.append(pv)
        grids.append(g)
        sizes.append(resized_size(im.width, im.height, cfg))

    # the image the point token follows: the last image placed before the first user <point>
    target, seen = None, 0
    for t in turns:
        if t["role"] == "assistant":
            continue
        for piece in _PLACEHOLDER.split(t["content"]):
            if piece == "<image>":
                seen += 1
            elif piece == "<point>" and target is None:
                target = max(seen - 1, 0)
    # the point and box are read (and checked) only when the text uses them
    uses_point = target is not None or any("<point>" in t["content"] for t in turns if t["role"] == "assistant")
    point = _point_of(row) if uses_point else None
    if target is not None and point is None:
        raise DropRow("missing_point")
    if target is not None and not images:
        raise DropRow("point_without_image")
    bbox = _bbox_of(row) if any("<box>" in t["content"] for t in turns) else None
    size = sizes[0] if sizes else None
    phrase = row.get("expression")
    crop_boxes = torch.zeros(0, 4)
    n_crop = (crop_px // FACTOR) ** 2 if crop_px and target is not None else 0  # merged crop tokens
    if n_crop:
        try:
            cpv, cg, crop_boxes = preprocess_crop(images[target], point, cfg.foveal_crop_fraction, crop_px)
        except (ValueError, OSError):
            raise DropRow("bad_image") from None
        # reading order: the crop's run follows its image's <|point|>, before the next image
        run_pixels = [*pixel_values[:target + 1], cpv, *pixel_values[target + 1:]]
        run_grids = [*grids[:target + 1], cg, *grids[target + 1:]]
    else:
        run_pixels, run_grids = pixel_values, grids

    b = _Builder(tok)
    img_k, image_end, canonical_done = 0, 0, False
    for t in turns:
        role, content = t["role"], t["content"]
        sup = role == "assistant"
        b.token(sp.im_start)
        b.text(f"{role}\n", False)
        stage2 = (not sup and cfg.num_virtual_tokens > 0 and content.strip() == "<image><point>")
        pieces = [p for p in _PLACEHOLDER.split(content) if p]
        for j, piece in enumerate(pieces):
            if piece == "<image>":
                g = grids[img_k][0]
                b.token(sp.vision_start)
                b.token(sp.image_pad, int(g[0] * (g[1] // MERGE_SIZE) * (g[2] // MERGE_SIZE)))
                b.token(sp.vision_end)
                if img_k == target:
                    b.token(sp.point)
                    if n_crop:
                        b.token(sp.crop_pad, n_crop)
                    if stage2:
                        b.token(sp.pad, cfg.num_virtual_tokens, virtual=True)
                img_k += 1
                image_end = len(b.ids)
            elif piece == "<point>":
                if sup:
                    if point is None:
                        raise DropRow("missing_point")
                    b.text(render_point(point, cfg.box_format, size), True)
                elif not canonical_done and j > 0 and pieces[j - 1] == "<image>" and img_k - 1 == target:
                    canonical_done = True  # its token is already right after the image
                else:
                    canonical_done = True
                    b.text(INLINE_POINT_PHRASE, False)
            elif piece == "<box>":
                if bbox is None:
                    raise DropRow("missing_box")
                if cfg.box_format == "pixel" and size is None:
                    raise DropRow("missing_image")
                b.text(render_box(bbox, cfg.box_format, size, phrase if sup else None), sup)
            else:
                b.text(piece, sup)
        b.token(sp.im_end, sup=sup)
        b.text("\n", False)
    if add_generation_prompt:
        b.token(sp.im_start)
        b.text("assistant\n", False)
    b.flush()

    ids, sup, virtual = b.ids, b.sup, b.virtual
    if not add_generation_prompt:
        if len(ids) > cfg.max_length:
            if cfg.max_length < image_end:
                raise DropRow("truncated_image")
            ids, sup, virtual = ids[:cfg.max_length], sup[:cfg.max_length], virtual[:cfg.max_length]
            if not any(sup):
                raise DropRow("truncated_no_labels")
        elif not any(sup):
            raise DropRow("no_assistant_turn")
    input_ids = torch.tensor(ids, dtype=torch.long)  # (L,)
    labels = torch.where(torch.tensor(sup, dtype=torch.bool), input_ids, IGNORE_INDEX)  # (L,)
    points = torch.tensor([point] if target is not None else [], dtype=torch.float32).view(-1, 2)  # (n_pt, 2)
    return {
        "input_ids": input_ids,
        "labels": labels,
        "virtual_mask": torch.tensor(virtual, dtype=torch.bool),
        "pixel_values": _join(run_pixels),
        "image_grid_thw": torch.cat(run_grids) if run_grids else None,
        "points": points,
        "crop_boxes": crop_boxes,
        "id": str(row.get("id", "")),
        "task": str(row.get("task", "")),
    }
