"""Batches: padding or packing, attention masks, labels and M-RoPE position ids.

Position ids come from :func:`owl_train.model.rope.get_rope_index`, the function the model
calls, on the padded (B, L) batch, so they always have the batch's length whatever
``pad_to_multiple_of``; points are passed when the batch has any (then ids are float32), with
``cfg.point_placement`` and the foveal crops' boxes (the model's settings: build ``cfg`` with
:func:`owl_train.data.config.data_config_for_model`).
Packing (``cfg.pack``) concatenates rows with :func:`pack_rows` into sequences of at most
``max_length`` tokens; ``segment_ids`` (-1 on padding) restart positions per row and keep
attention within each row (the model's ``segment_ids`` argument).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from owl_train.data.config import MERGE_SIZE, DataConfig
from owl_train.data.render import IGNORE_INDEX, DropRow, encode_row
from owl_train.data.tokens import TokenizerAdapter
from owl_train.model.rope import get_rope_index

__all__ = ["Collator", "pack_rows"]


def pack_rows(encoded: Sequence[Mapping[str, Any]], max_length: int) -> list[list[Mapping[str, Any]]]:
    """Greedy first-fit: each row, in order, goes to the first sequence with room for it.

    Deterministic; rows keep their relative order within a sequence.

    Raises:
        ValueError: a row longer than ``max_length`` (encode truncates rows to it).
    """
    bins: list[list[Mapping[str, Any]]] = []
    room: list[int] = []
    for e in encoded:
        n = int(e["input_ids"].numel())
        if n > max_length:
            raise ValueError(f"row {e.get('id')!r} has {n} tokens > max_length={max_length}; encode it with the "
                             "same DataConfig so it is truncated")
        for k, r in enumerate(room):
            if n <= r:
                bins[k].append(e)
                room[k] -= n
                break
        else:
            bins.append([e])
            room.append(max_length - n)
    return bins


def _cat(parts: list[Tensor | None]) -> Tensor | None:
    parts = [p for p in parts if p is not None and p.numel()]
    return torch.cat(parts) if parts else None


class Collator:
    """Rows (from :class:`owl_train.data.mix_dataset.MixIterableDataset`) -> a training batch.

    Attributes:
        cfg: the :class:`DataConfig`.
        special: the special token ids (:class:`owl_train.data.tokens.SpecialTokens`).
        dropped: rows not used, per reason, over this object's life (one copy per DataLoader
            worker: aggregate each batch's ``dropped`` entry instead when using workers).
    """

    def __init__(self, tokenizer: Any, cfg: DataConfig) -> None:
        self.cfg = cfg
        self.tok = TokenizerAdapter(tokenizer)
        self.special = self.tok.special
        self.dropped: Counter[str] = Counter()
        if cfg.foveal_crop_pixels and self.special.crop_pad is None:
            raise ValueError("DataConfig.foveal_crop_pixels is set but the tokenizer has no <|crop_pad|> token: "
                             "use the model's own tokenizer (owl-train init-tiny writes it)")

    def encode(self, row: Mapping[str, Any], *, add_generation_prompt: bool = False) -> dict[str, Any] | None:
        """One row -> ``{input_ids (L,), labels (L,), pixel_values, image_grid_thw, points (n, 2),
        crop_boxes (n_crop, 4), virtual_mask (L,), id, task}``, or None when dropped (reason
        counted in :attr:`dropped`).

        ``add_generation_prompt``: end with ``<|im_start|>assistant\\n`` for generation (the row
        then holds the prompt turns only; nothing is truncated or dropped for lack of labels).
        """
        try:
            return encode_row(row, self.tok, self.cfg, add_generation_prompt)
        except DropRow as e:
            self.dropped[e.reason] += 1
            return None

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Rows (raw, or already encoded by :meth:`encode`) -> the batch.

        Returns:
            input_ids (B, L) int64, attention_mask (B, L) int64, labels (B, L) int64 (-100 not
            supervised), position_ids (3, B, L) (int64, float32 with points), rope_deltas (B, 1),
            pixel_values (N, 1176) | None, image_grid_thw (N_runs, 3) | None (images and foveal
            crops in reading order), points (N_pt, 2) | None, crop_boxes (N_crop, 4) | None,
            virtual_mask (B, L) bool, segment_ids (B, L) int64 | None (packing; -1 on
            padding), ids / tasks: lists in reading order (one per row, so with packing longer
            than B), dropped: {reason: count} for this batch. Everything dropped: B = 0.
        """
        before = Counter(self.dropped)
        enc = [r if "input_ids" in r else self.encode(r) for r in rows]
        enc = [e for e in enc if e is not None]
        dropped = dict(self.dropped - before)
        groups = pack_rows(enc, self.cfg.max_length) if self.cfg.pack else [[e] for e in enc]
        order = [e for g in groups for e in g]
        lengths = [sum(int(e["input_ids"].numel()) for e in g) for g in groups]
        B = len(groups)
        L = max(lengths, default=0)
        m = self.cfg.pad_to_multiple_of
        if m and L % m:
            L += m - L % m
        input_ids = torch.full((B, L), self.special.pad, dtype=torch.long)
        attention_mask = torch.zeros(B, L, dtype=torch.long)
        labels = torch.full((B, L), IGNORE_INDEX, dtype=torch.long)
        virtual_mask = torch.zeros(B, L, dtype=torch.bool)
        segment_ids = torch.full((B, L), -1, dtype=torch.long) if self.cfg.pack else None
        left = self.cfg.padding_side == "left"
        for i, (g, n) in enumerate(zip(groups, lengths)):
            at = L - n if left else 0
            for k, e in enumerate(g):
                sl = slice(at, at + int(e["input_ids"].numel()))
                input_ids[i, sl] = e["input_ids"]
                labels[i, sl] = e["labels"]
                virtual_mask[i, sl] = e["virtual_mask"]
                attention_mask[i, sl] = 1
                if segment_ids is not None:
                    segment_ids[i, sl] = k
                at = sl.stop
        pixel_values = _cat([e["pixel_values"] for e in order])
        grid = _cat([e["image_grid_thw"] for e in order])
        points = _cat([e["points"] for e in order])
        crop_boxes = _cat([e.get("crop_boxes") for e in order])
        if B and L:
            position_ids, rope_deltas = get_rope_index(
                input_ids, grid, attention_mask, image_token_id=self.special.image_pad,
                spatial_merge_size=MERGE_SIZE, point_token_id=self.special.point if points is not None else None,
                points=points, segment_ids=segment_ids, point_placement=self.cfg.point_placement,
                crop_token_id=self.special.crop_pad, crop_boxes=crop_boxes)
        else:
            position_ids, rope_deltas = torch.zeros(3, B, L, dtype=torch.long), torch.zeros(B, 1, dtype=torch.long)
        return {
            "input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
            "position_ids": position_ids, "rope_deltas": rope_deltas,
            "pixel_values": pixel_values, "image_grid_thw": grid, "points": points, "crop_boxes": crop_boxes,
            "virtual_mask": virtual_mask, "segment_ids": segment_ids,
            "ids": [e["id"] for e in order], "tasks": [e["task"] for e in order], "dropped": dropped,
        }
