"""Owl-VL: the Qwen2-VL architecture plus the point token.

input_ids (B, L) -> token embeddings; the ViT's merged patch features replace the
``<|image_pad|>`` embeddings (and, with ``foveal_crop``, the ``<|crop_pad|>`` embeddings) in
reading order; each ``<|point|>`` embedding becomes its learned embedding + W · fourier(x, y)
(+ the focus features at (x, y) with ``point_focus``); with ``point_patch_code`` every image
token adds W · fourier(its cell centre). M-RoPE position ids come from
:func:`rope.get_rope_index` (the same function the collator calls), by default putting the point
where it points in its image's rotary frame; the decoder and the LM head give logits (B, L, V).
The options are described on :class:`~owl_train.model.config.OwlVLConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from owl_train.model.attention import flash_usable, text_plan
from owl_train.model.config import OwlVLConfig
from owl_train.model.decoder import Decoder, KVCache
from owl_train.model.point import FocusSampler, PointEncoder, fourier_features, patch_centres, point_frames
from owl_train.model.rope import get_rope_index, vision_runs
from owl_train.model.vision import VisionTransformer

__all__ = ["OwlVL", "OwlVLOutput", "PointEncoder", "FocusSampler", "fourier_features", "EXTRA_WEIGHTS",
           "OPTION_WEIGHTS"]

OPTION_WEIGHTS = ("point_focus.",)  # weights only some point-grounding options have
EXTRA_WEIGHTS = ("point_encoder.", *OPTION_WEIGHTS)  # ours, not Qwen2-VL's: owl_extra.safetensors


@dataclass
class OwlVLOutput:
    logits: Tensor  # (B, L_kept, V)
    hidden_states: Tensor  # (B, L, D) after the final norm
    position_ids: Tensor  # (3, B, L)
    rope_deltas: Tensor | None  # (B, 1), when positions were computed here
    cache: KVCache | None


class OwlVL(nn.Module):
    def __init__(self, config: OwlVLConfig) -> None:
        super().__init__()
        self.config = config
        self.visual = VisionTransformer(config.vision)
        self.decoder = Decoder(config.text, mrope_interleaved=config.mrope_interleaved)
        self.lm_head = None if config.tie_word_embeddings else \
            nn.Linear(config.text.hidden_size, config.text.vocab_size, bias=False)
        self.point_encoder = None if config.point_token_id is None else \
            PointEncoder(config.point_fourier_bands, config.text.hidden_size)
        self.point_focus = FocusSampler(config.vision, config.text.hidden_size) if config.point_focus else None

    def reset_parameters(self, seed: int = 0, std: float = 0.02) -> "OwlVL":
        """Random init as Qwen2-VL's ``_init_weights`` (normal(0, std), zero bias, unit norms).

        The weights every variant shares are drawn first, in name order, so one seed gives them
        the same values whichever options are on; the options' own weights come after."""
        g = torch.Generator().manual_seed(seed)
        for name, p in sorted(self.named_parameters(), key=lambda kv: (kv[0].startswith(OPTION_WEIGHTS), kv[0])):
            with torch.no_grad():
                if name.endswith("bias"):
                    p.zero_()
                elif "norm" in name and p.dim() == 1:
                    p.fill_(1.0)
                else:
                    p.copy_(torch.randn(p.shape, generator=g) * std)
        return self

    @property
    def output_embeddings(self) -> Tensor:
        return self.decoder.embed_tokens.weight if self.lm_head is None else self.lm_head.weight

    def embed(self, input_ids: Tensor, pixel_values: Tensor | None = None, image_grid_thw: Tensor | None = None,
              points: Tensor | None = None) -> Tensor:
        """input_ids (B, L) -> input embeddings (B, L, D) with image features and point embeddings.

        ``pixel_values`` (N_patches, 1176) and ``image_grid_thw`` (N_runs, 3) hold every vision
        run in reading order (images and, with ``foveal_crop``, crops); ``points`` (N_pt, 2)
        (x, y) in [0, 1] of the image before each ``<|point|>``.

        Raises:
            ValueError: placeholder tokens and features (or points) differ in number.
        """
        c = self.config
        x = self.decoder.embed_tokens(input_ids)  # (B, L, D)
        if pixel_values is not None:
            feats = self.visual(pixel_values, image_grid_thw)  # (N_vis_tokens, D)
            mask = input_ids == c.image_token_id
            if c.crop_token_id is not None:
                mask |= input_ids == c.crop_token_id
            if int(mask.sum()) != feats.shape[0]:
                raise ValueError(f"{int(mask.sum())} <|image_pad|>/<|crop_pad|> tokens but the images give "
                                 f"{feats.shape[0]} features")
            if c.point_patch_code and self.point_encoder is not None:
                _, run_crop = vision_runs(input_ids, c.image_token_id, c.crop_token_id)
                per_run = image_grid_thw.long().prod(-1).to(feats.device) // c.vision.spatial_merge_size ** 2
                is_image = ~torch.repeat_interleave(run_crop.to(feats.device), per_run)  # (N_vis_tokens,)
                code = self.point_encoder(patch_centres(image_grid_thw.to(feats.device), c.vision.spatial_merge_size))
                feats = torch.where(is_image[:, None], feats + code.to(feats.dtype), feats)
            x = x.masked_scatter(mask.unsqueeze(-1), feats.to(x.dtype))
        if points is not None and self.point_encoder is not None:
            mask = input_ids == c.point_token_id
            if int(mask.sum()) != points.shape[0]:
                raise ValueError(f"{int(mask.sum())} <|point|> tokens but {points.shape[0]} points")
            add = self.point_encoder(points)  # (N_pt, D)
            if self.point_focus is not None and pixel_values is not None and points.shape[0]:
                frames = point_frames(input_ids, c.image_token_id, c.point_token_id, c.crop_token_id)
                add = add + self.point_focus(pixel_values, image_grid_thw, frames, points, self.visual.patch_embed)
            x = x.masked_scatter(mask.unsqueeze(-1), (x[mask] + add.to(x.dtype)))
        return x

    def position_ids(self, input_ids: Tensor, image_grid_thw: Tensor | None = None,
                     attention_mask: Tensor | None = None, points: Tensor | None = None,
                     segment_ids: Tensor | None = None, crop_boxes: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(3, B, L) position ids and (B, 1) rope deltas, from this model's token ids."""
        c = self.config
        return get_rope_index(input_ids, image_grid_thw, attention_mask, image_token_id=c.image_token_id,
                              spatial_merge_size=c.vision.spatial_merge_size, point_token_id=c.point_token_id,
                              points=points, segment_ids=segment_ids, point_placement=c.point_placement,
                              crop_token_id=c.crop_token_id, crop_boxes=crop_boxes)

    def forward(
        self,
        input_ids: Tensor,
        *,
        attention_mask: Tensor | None = None,
        pixel_values: Tensor | None = None,
        image_grid_thw: Tensor | None = None,
        points: Tensor | None = None,
        segment_ids: Tensor | None = None,
        crop_boxes: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        cache: KVCache | None = None,
        logits_to_keep: int = 0,
    ) -> OwlVLOutput:
        """Logits for a batch.

        Args:
            input_ids: (B, L) token ids (also used for positions when ``position_ids`` is None).
            attention_mask: (B, L_past + L), 1 real / 0 padding (left or right).
            pixel_values: (N_patches, 1176) and image_grid_thw (N_runs, 3), Qwen2-VL layout: the
                images and (``foveal_crop``) the crops, in reading order.
            points: (N_pt, 2) (x, y) in [0, 1] of the image before each ``<|point|>``.
            segment_ids: (B, L) packed rows: each segment attends and is positioned alone.
            crop_boxes: (N_crop, 4) foveal crop squares (x0, y0, x1, y1) in [0, 1] of their image,
                one per ``<|crop_pad|>`` run (only for positions computed here).
            position_ids: (3, B, L) precomputed (the collator's); required with a non-empty cache.
            inputs_embeds: (B, L, D) replaces :meth:`embed` (e.g. stage 2's virtual tokens).
            cache: a :class:`KVCache` to read and extend (generation).
            logits_to_keep: compute logits for the last n positions only (0: all).
        """
        past = 0 if cache is None else cache.seq_len
        deltas = None
        if position_ids is None:
            if past:
                raise ValueError("position_ids are required when the cache is not empty")
            mask_now = None if attention_mask is None else attention_mask[:, -input_ids.shape[1]:]
            position_ids, deltas = self.position_ids(input_ids, image_grid_thw, mask_now, points, segment_ids,
                                                     crop_boxes)
        x = inputs_embeds if inputs_embeds is not None else self.embed(input_ids, pixel_values, image_grid_thw, points)
        B, L, _ = x.shape
        plan = text_plan(B, L, past, x.device, attention_mask, segment_ids, use_flash=flash_usable(x) and cache is None)
        h = self.decoder(x, position_ids, plan, cache)  # (B, L, D)
        kept = h[:, -logits_to_keep:] if logits_to_keep else h
        logits = nn.functional.linear(kept, self.output_embeddings)  # (B, L_kept, V)
        return OwlVLOutput(logits=logits, hidden_states=h, position_ids=position_ids, rope_deltas=deltas, cache=cache)
