"""Owl-VL: the Qwen2-VL architecture plus the point token.

input_ids (B, L) -> token embeddings; the ViT's merged patch features replace the
``<|image_pad|>`` embeddings in reading order; each ``<|point|>`` embedding becomes its learned
embedding + W · fourier(x, y); M-RoPE position ids come from :func:`rope.get_rope_index`
(the same function the collator calls) and put the point where it points in its image's
rotary frame; the decoder and the LM head give logits (B, L, V).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from owl_train.model.attention import flash_usable, text_plan
from owl_train.model.config import OwlVLConfig
from owl_train.model.decoder import Decoder, KVCache
from owl_train.model.rope import get_rope_index
from owl_train.model.vision import VisionTransformer

__all__ = ["OwlVL", "OwlVLOutput", "PointEncoder", "fourier_features"]


def fourier_features(points: Tensor, bands: int) -> Tensor:
    """points (N, 2) as (x, y) in [0, 1] -> (N, 4 * bands): sin and cos of 2^k π x and 2^k π y."""
    f = (2.0 ** torch.arange(bands, device=points.device, dtype=torch.float32)) * math.pi  # (bands,)
    a = points.float()[:, :, None] * f  # (N, 2, bands)
    return torch.cat([a.sin(), a.cos()], dim=-1).flatten(1)  # (N, 4 * bands)


class PointEncoder(nn.Module):
    """A learned linear projection of the point's Fourier features (zero at init)."""

    def __init__(self, bands: int, dim: int) -> None:
        super().__init__()
        self.bands = bands
        self.proj = nn.Linear(4 * bands, dim, bias=False)
        nn.init.zeros_(self.proj.weight)

    def forward(self, points: Tensor) -> Tensor:
        return self.proj(fourier_features(points, self.bands).to(self.proj.weight.dtype))  # (N, D)


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
        self.decoder = Decoder(config.text)
        self.lm_head = None if config.tie_word_embeddings else \
            nn.Linear(config.text.hidden_size, config.text.vocab_size, bias=False)
        self.point_encoder = None if config.point_token_id is None else \
            PointEncoder(config.point_fourier_bands, config.text.hidden_size)

    def reset_parameters(self, seed: int = 0, std: float = 0.02) -> "OwlVL":
        """Random init as Qwen2-VL's ``_init_weights`` (normal(0, std), zero bias, unit norms)."""
        g = torch.Generator().manual_seed(seed)
        for name, p in sorted(self.named_parameters()):
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
        """input_ids (B, L) -> input embeddings (B, L, D) with image features and point embeddings."""
        x = self.decoder.embed_tokens(input_ids)  # (B, L, D)
        if pixel_values is not None:
            feats = self.visual(pixel_values, image_grid_thw)  # (N_img_tokens, D)
            mask = input_ids == self.config.image_token_id
            if int(mask.sum()) != feats.shape[0]:
                raise ValueError(f"{int(mask.sum())} <|image_pad|> tokens but the images give {feats.shape[0]} features")
            x = x.masked_scatter(mask.unsqueeze(-1), feats.to(x.dtype))
        if points is not None and self.point_encoder is not None:
            mask = input_ids == self.config.point_token_id
            if int(mask.sum()) != points.shape[0]:
                raise ValueError(f"{int(mask.sum())} <|point|> tokens but {points.shape[0]} points")
            x = x.masked_scatter(mask.unsqueeze(-1), (x[mask] + self.point_encoder(points).to(x.dtype)))
        return x

    def position_ids(self, input_ids: Tensor, image_grid_thw: Tensor | None = None,
                     attention_mask: Tensor | None = None, points: Tensor | None = None,
                     segment_ids: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(3, B, L) position ids and (B, 1) rope deltas, from this model's token ids."""
        c = self.config
        return get_rope_index(input_ids, image_grid_thw, attention_mask, image_token_id=c.image_token_id,
                              spatial_merge_size=c.vision.spatial_merge_size, point_token_id=c.point_token_id,
                              points=points, segment_ids=segment_ids)

    def forward(
        self,
        input_ids: Tensor,
        *,
        attention_mask: Tensor | None = None,
        pixel_values: Tensor | None = None,
        image_grid_thw: Tensor | None = None,
        points: Tensor | None = None,
        segment_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        cache: KVCache | None = None,
        logits_to_keep: int = 0,
    ) -> OwlVLOutput:
        """Logits for a batch.

        Args:
            input_ids: (B, L) token ids (also used for positions when ``position_ids`` is None).
            attention_mask: (B, L_past + L), 1 real / 0 padding (left or right).
            pixel_values: (N_patches, 1176) and image_grid_thw (N_img, 3), Qwen2-VL layout.
            points: (N_pt, 2) (x, y) in [0, 1] of the image before each ``<|point|>``.
            segment_ids: (B, L) packed rows: each segment attends and is positioned alone.
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
            position_ids, deltas = self.position_ids(input_ids, image_grid_thw, mask_now, points, segment_ids)
        x = inputs_embeds if inputs_embeds is not None else self.embed(input_ids, pixel_values, image_grid_thw, points)
        B, L, _ = x.shape
        plan = text_plan(B, L, past, x.device, attention_mask, segment_ids, use_flash=flash_usable(x) and cache is None)
        h = self.decoder(x, position_ids, plan, cache)  # (B, L, D)
        kept = h[:, -logits_to_keep:] if logits_to_keep else h
        logits = nn.functional.linear(kept, self.output_embeddings)  # (B, L_kept, V)
        return OwlVLOutput(logits=logits, hidden_states=h, position_ids=position_ids, rope_deltas=deltas, cache=cache)
