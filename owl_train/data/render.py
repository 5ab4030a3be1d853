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

Labels come from the same tokenisation as the ids (:class:`~owl_train.data.tokens.PieceBuilder`).
Supervised: the content of assistant turns and their ``<|im_end|>``; never the role headers, the
``\\n`` after ``<|im_end|>``, image, point, crop or virtual tokens.
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
from owl_data.errors import RejectError
from owl_train.data.config import FACTOR, MERGE_SIZE, DataConfig
from owl_train.data.image import preprocess_crop, preprocess_image, resized_size
from owl_train.data.tokens import PieceBuilder, TokenizerAdapter

__all__ = ["DropRow", "encode_row", "INLINE_POINT_PHRASE", "IGNORE_INDEX", "RESERVED_TOKENS"]

IGNORE_INDEX = -100
INLINE_POINT_PHRASE = "the object at the point"
# structural tokens that row text must not contain (they would forge turns, images or points)
RESERVED_TOKENS = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                   "<|video_pad|>", "<|point|>", "<|crop_pad|>", "<|endoftext|>")
_PLACEHOLDER = re.compile(r"(<image>|<point>|<box>)")
_IMAGE_POINT = re.compile(r"<image>\s*<point>")
_ROLES = ("system", "user", "assistant")


class DropRow(RejectError):
    """A row the data path does not use; ``reason`` is counted in ``Collator.dropped``."""


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


def _turns_of(row: Mapping[str, Any], cfg: DataConfig) -> list[dict[str, str]]:
    """The row's turns, ``<image> <point>`` made canonical, ``cfg.system_prompt`` first if it has none.

    Raises:
        DropRow: ``bad_conversation`` (no turns, or a turn without a known role and text content),
            ``special_token_in_text``, ``empty_answer``.
    """
    turns = row.get("conversations")
    if not isinstance(turns, Sequence) or not turns or not all(
            isinstance(t, Mapping) and t.get("role") in _ROLES and isinstance(t.get("content"), str) for t in turns):
        raise DropRow("bad_conversation")
    out = [{"role": t["role"], "content": _IMAGE_POINT.sub("<image><point>", t["content"])} for t in turns]
    if any(r in t["content"] for t in out for r in RESERVED_TOKENS):
        raise DropRow("special_token_in_text")
    if any(t["role"] == "assistant" and not t["content"].strip() for t in out):
        raise DropRow("empty_answer")  # it would teach the model to end its turn at once
    if out[0]["role"] != "system" and cfg.system_prompt is not None:
        out.insert(0, {"role": "system", "content": cfg.system_prompt})
    return out


def _point_target(turns: Sequence[Mapping[str, str]]) -> int | None:
    """The index of the image the point token follows: the last image placed before the first
    ``<point>`` of a user or system turn (0 when none is before it); None when no such turn has one."""
    target, seen = None, 0
    for t in turns:
        if t["role"] == "assistant":
            continue
        for piece in _PLACEHOLDER.split(t["content"]):
            if piece == "<image>":
                seen += 1
            elif piece == "<point>" and target is None:
                target = max(seen - 1, 0)
    return target


@dataclass(frozen=True)
class _Plan:
    """What a row renders from, checked: its turns, images (preprocessed), point and box.

    ``grids``: one (1, 3) grid per image; ``size``: the first image's resized (W, H), the frame of
    ``pixel`` coordinates (None without an image); ``target``: the image the ``<|point|>`` token
    follows (None: no point token); ``n_crop``: crop tokens after it; ``pixel_values`` /
    ``image_grid_thw``: the images' and crop's patches in reading order; ``crop_boxes``
    (n_crop_images, 4) in [0, 1] of the crop's image.
    """

    turns: list[dict[str, str]]
    grids: list[torch.Tensor]
    size: tuple[int, int] | None
    target: int | None
    point: tuple[float, float] | None
    bbox: list[float] | None
    phrase: Any
    n_crop: int
    pixel_values: list[torch.Tensor]
    image_grid_thw: list[torch.Tensor]
    crop_boxes: torch.Tensor


def _preprocess_images(images: Sequence[Image.Image], cfg: DataConfig,
                       ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[tuple[int, int]]]:
    """Each image's patches (N_i, 1176), grid (1, 3) and resized (W, H).

    Raises:
        DropRow: ``bad_image``: aspect ratio over 200, empty, undecodable or truncated image data.
    """
    pixel_values, grids, sizes = [], [], []
    for im in images:
        try:
            pv, g = preprocess_image(im, cfg)
        except (ValueError, OSError):
            raise DropRow("bad_image") from None
        pixel_values.append(pv)
        grids.append(g)
        sizes.append(resized_size(im.width, im.height, cfg))
    return pixel_values, grids, sizes


def _with_crop(images: Sequence[Image.Image], target: int, point: tuple[float, float], cfg: DataConfig,
               pixel_values: list[torch.Tensor], grids: list[torch.Tensor],
               ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """The images' patches and grids with the foveal crop of ``images[target]`` inserted right after
    that image's (reading order: the crop's run follows its image's ``<|point|>``), and its box.

    Raises:
        DropRow: ``bad_image``: the crop cannot be made.
    """
    try:
        cpv, cg, crop_boxes = preprocess_crop(images[target], point, cfg.foveal_crop_fraction,
                                              cfg.foveal_crop_pixels)
    except (ValueError, OSError):
        raise DropRow("bad_image") from None
    return ([*pixel_values[:target + 1], cpv, *pixel_values[target + 1:]],
            [*grids[:target + 1], cg, *grids[target + 1:]], crop_boxes)


def _plan(row: Mapping[str, Any], cfg: DataConfig) -> _Plan:
    """Check the row and preprocess its images; the point and box are read (and checked) only when
    the text uses them.

    Raises:
        DropRow: see :func:`_turns_of`, :func:`_preprocess_images`; ``image_mismatch`` (placeholders
            != images), ``image_in_assistant``, ``bad_point``, ``missing_point``,
            ``point_without_image``, ``bad_box``.
    """
    turns = _turns_of(row, cfg)
    images = _images_of(row)
    if sum(t["content"].count("<image>") for t in turns) != len(images):
        raise DropRow("image_mismatch")
    if any("<image>" in t["content"] for t in turns if t["role"] == "assistant"):
        raise DropRow("image_in_assistant")
    pixel_values, grids, sizes = _preprocess_images(images, cfg)
    target = _point_target(turns)
    uses_point = target is not None or any("<point>" in t["content"] for t in turns if t["role"] == "assistant")
    point = _point_of(row) if uses_point else None
    if target is not None and point is None:
        raise DropRow("missing_point")
    if target is not None and not images:
        raise DropRow("point_without_image")
    bbox = _bbox_of(row) if any("<box>" in t["content"] for t in turns) else None
    n_crop = (cfg.foveal_crop_pixels // FACTOR) ** 2 if target is not None else 0  # merged crop tokens (0: no crop)
    run_pixels, run_grids, crop_boxes = pixel_values, grids, torch.zeros(0, 4)
    if n_crop:
        assert target is not None and point is not None
        run_pixels, run_grids, crop_boxes = _with_crop(images, target, point, cfg, pixel_values, grids)
    return _Plan(turns=turns, grids=grids, size=sizes[0] if sizes else None, target=target, point=point, bbox=bbox,
                 phrase=row.get("expression"), n_crop=n_crop, pixel_values=run_pixels, image_grid_thw=run_grids,
                 crop_boxes=crop_boxes)


@dataclass
class _Cursor:
    """Rendering so far: ``images`` placed, ``image_end`` (where the last one ends, in ids: no cut
    before it), ``point_placed`` (the first user ``<point>`` is done)."""

    images: int = 0
    image_end: int = 0
    point_placed: bool = False


def _render_image(b: PieceBuilder, at: _Cursor, plan: _Plan, cfg: DataConfig, stage2: bool) -> None:
    """``<|vision_start|>``, the image's pads, ``<|vision_end|>``; then, after the point's image,
    ``<|point|>``, the crop pads and (stage 2) the virtual tokens."""
    sp = b.tok.special
    g = plan.grids[at.images][0]
    b.token(sp.vision_start)
    b.token(sp.image_pad, int(g[0] * (g[1] // MERGE_SIZE) * (g[2] // MERGE_SIZE)))
    b.token(sp.vision_end)
    if at.images == plan.target:
        b.token(sp.point)
        if plan.n_crop:
            assert sp.crop_pad is not None
            b.token(sp.crop_pad, plan.n_crop)
        if stage2:
            b.token(sp.pad, cfg.num_virtual_tokens, virtual=True)
    at.images += 1
    at.image_end = len(b.ids)


def _render_point(b: PieceBuilder, at: _Cursor, plan: _Plan, cfg: DataConfig, sup: bool, after_image: bool) -> None:
    """``<point>``: in an answer, the point as text; the first user one right after its image is
    already the ``<|point|>`` token; any other becomes :data:`INLINE_POINT_PHRASE`.

    Raises:
        DropRow: ``missing_point``: an answer points but the row has no point.
    """
    if sup:
        if plan.point is None:
            raise DropRow("missing_point")
        b.text(render_point(plan.point, cfg.box_format, plan.size), True)
    elif not at.point_placed and after_image and at.images - 1 == plan.target:
        at.point_placed = True  # its token is already right after the image
    else:
        at.point_placed = True
        b.text(INLINE_POINT_PHRASE, False)


def _render_box(b: PieceBuilder, plan: _Plan, cfg: DataConfig, sup: bool) -> None:
    """``<box>``: the row's box as text (in an answer of ``qwen``, after the row's expression).

    Raises:
        DropRow: ``missing_box``; ``missing_image`` (``pixel`` boxes need an image).
    """
    if plan.bbox is None:
        raise DropRow("missing_box")
    if cfg.box_format == "pixel" and plan.size is None:
        raise DropRow("missing_image")
    b.text(render_box(plan.bbox, cfg.box_format, plan.size, plan.phrase if sup else None), sup)


def _render(plan: _Plan, tok: TokenizerAdapter, cfg: DataConfig, add_generation_prompt: bool) -> tuple[PieceBuilder, int]:
    """The chat tokens of the planned row (and the assistant header when ``add_generation_prompt``);
    returns the flushed builder and the end of the last image (in ids)."""
    sp = tok.special
    b, at = PieceBuilder(tok), _Cursor()
    for t in plan.turns:
        role, content = t["role"], t["content"]
        sup = role == "assistant"
        b.token(sp.im_start)
        b.text(f"{role}\n", False)
        stage2 = (not sup and cfg.num_virtual_tokens > 0 and content.strip() == "<image><point>")
        pieces = [p for p in _PLACEHOLDER.split(content) if p]
        for j, piece in enumerate(pieces):
            if piece == "<image>":
                _render_image(b, at, plan, cfg, stage2)
            elif piece == "<point>":
                _render_point(b, at, plan, cfg, sup, after_image=j > 0 and pieces[j - 1] == "<image>")
            elif piece == "<box>":
                _render_box(b, plan, cfg, sup)
            else:
                b.text(piece, sup)
        b.token(sp.im_end, sup=sup)
        b.text("\n", False)
    if add_generation_prompt:
        b.token(sp.im_start)
        b.text("assistant\n", False)
    b.flush()
    return b, at.image_end


def _truncate(b: PieceBuilder, image_end: int, cfg: DataConfig) -> tuple[list[int], list[bool], list[bool]]:
    """A training row's ids, supervision and virtual flags cut to ``cfg.max_length``.

    Raises:
        DropRow: ``truncated_image`` (the cut falls inside an image), ``truncated_no_labels``,
            ``no_assistant_turn``.
    """
    ids, sup, virtual = b.ids, b.sup, b.virtual
    if len(ids) > cfg.max_length:
        if cfg.max_length < image_end:
            raise DropRow("truncated_image")
        ids, sup, virtual = ids[:cfg.max_length], sup[:cfg.max_length], virtual[:cfg.max_length]
        if not any(sup):
            raise DropRow("truncated_no_labels")
    elif not any(sup):
        raise DropRow("no_assistant_turn")
    return ids, sup, virtual


def encode_row(row: Mapping[str, Any], tok: TokenizerAdapter, cfg: DataConfig,
               add_generation_prompt: bool = False) -> dict[str, Any]:
    """Encode one row (see the module docstring); raises :class:`DropRow` with a reason.

    Steps: check the row, preprocess its images (:func:`_plan`); render (:func:`_render`); cut a
    training row to ``cfg.max_length`` (:func:`_truncate`; a generation prompt is never cut).

    Returns:
        input_ids (L,) int64, labels (L,) int64 (-100 unsupervised), virtual_mask (L,) bool,
        pixel_values (N, 1176) float32 | None, image_grid_thw (n_img, 3) int64 | None,
        points (n_pt, 2) float32 (x, y) in [0, 1], crop_boxes (n_crop, 4) float32 (x0, y0, x1, y1)
        in [0, 1] of the crop's image, id, task. ``pixel_values``/``image_grid_thw`` hold the
        images and crops in reading order.

    Raises:
        ValueError: a foveal crop is configured but the tokenizer has no ``<|crop_pad|>``.
    """
    if cfg.foveal_crop_pixels and tok.special.crop_pad is None:
        raise ValueError("DataConfig.foveal_crop_pixels is set but the tokenizer has no <|crop_pad|> token: "
                         "use the model's own tokenizer (owl-train init-tiny writes it)")
    plan = _plan(row, cfg)
    b, image_end = _render(plan, tok, cfg, add_generation_prompt)
    ids, sup, virtual = (b.ids, b.sup, b.virtual) if add_generation_prompt else _truncate(b, image_end, cfg)
    input_ids = torch.tensor(ids, dtype=torch.long)  # (L,)
    labels = torch.where(torch.tensor(sup, dtype=torch.bool), input_ids, IGNORE_INDEX)  # (L,)
    points = torch.tensor([plan.point] if plan.target is not None else [], dtype=torch.float32).view(-1, 2)
    return {
        "input_ids": input_ids,
        "labels": labels,
        "virtual_mask": torch.tensor(virtual, dtype=torch.bool),
        "pixel_values": _join(plan.pixel_values),
        "image_grid_thw": torch.cat(plan.image_grid_thw) if plan.image_grid_thw else None,
        "points": points,  # (n_pt, 2)
        "crop_boxes": plan.crop_boxes,
        "id": str(row.get("id", "")),
        "task": str(row.get("task", "")),
    }
