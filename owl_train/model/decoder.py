"""The Qwen2 decoder with M-RoPE (transformers ``models/qwen2_vl``; Qwen2-VL paper, sec. 2.1).

Pre-norm blocks: RMSNorm -> GQA attention (q/k/v with bias, o without) with multimodal rotary
positions -> residual; RMSNorm -> SwiGLU MLP -> residual. M-RoPE splits the rotary
half-dimension into ``mrope_section`` = (t, h, w) chunks, each rotated by its own axis of the
(3, B, L) position ids; position ids may be fractional (the point token). With
``mrope_interleaved`` (variant (c)) the axes are interleaved over the frequencies instead, as
Qwen3-VL does (:func:`mrope_axes`), so h and w get high frequencies too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from owl_train.model.attention import AttnPlan, attend, rotary_inv_freq, rotate_half
from owl_train.model.config import TextConfig

__all__ = ["Decoder", "KVCache", "RMSNorm", "mrope_axes", "mrope_cos_sin"]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


class KVCache:
    """Per-layer keys and values (B, Hkv, L_past, Dh), grown by concatenation.

    One cache belongs to one generation call: :func:`owl_train.model.generate.generate`
    creates it, so nothing leaks from one call into the next.
    """

    def __init__(self, n_layers: int) -> None:
        self.k: list[Tensor | None] = [None] * n_layers
        self.v: list[Tensor | None] = [None] * n_layers

    @property
    def seq_len(self) -> int:
        return 0 if self.k[0] is None else self.k[0].shape[2]

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        if self.k[layer] is not None:
            k = torch.cat([self.k[layer], k], dim=2)
            v = torch.cat([self.v[layer], v], dim=2)
        self.k[layer], self.v[layer] = k, v
        return k, v


def mrope_axes(section: tuple[int, int, int], half: int, interleaved: bool = False) -> Tensor:
    """(half,) int64: which position axis (0 t, 1 h, 2 w) rotates each rotary frequency j.

    Chunked (Qwen2-VL, transformers ``models/qwen2_vl`` ``apply_multimodal_rotary_pos_emb``):
    the first section[0] frequencies take t, the next section[1] h, the last section[2] w, so h
    and w get the lowest frequencies (with (2, 3, 3) on half 8: t t h h h w w w).
    Interleaved (Qwen3-VL, transformers ``models/qwen3_vl`` ``apply_interleaved_mrope``): start
    from t everywhere; j takes h where j % 3 == 1 and j < 3·section[1], w where j % 3 == 2 and
    j < 3·section[2] (with (2, 3, 3) on half 8: t h w t h w t h), so every axis spans the
    frequency range. Interleaving changes the rotary layout trained weights learnt.
    """
    if not interleaved:
        return torch.repeat_interleave(torch.arange(3), torch.tensor(section))[:half]
    j = torch.arange(half)
    axes = torch.zeros(half, dtype=torch.long)
    axes[(j % 3 == 1) & (j < 3 * section[1])] = 1
    axes[(j % 3 == 2) & (j < 3 * section[2])] = 2
    return axes


def mrope_cos_sin(position_ids: Tensor, inv_freq: Tensor, section: tuple[int, int, int],
                  dtype: torch.dtype, interleaved: bool = False) -> tuple[Tensor, Tensor]:
    """position_ids (3, B, L) (int or float) -> cos, sin (B, L, Dh), computed in float32.

    Frequency j (of Dh / 2) is rotated by axis :func:`mrope_axes` ``(section, Dh / 2,
    interleaved)[j]`` of the position ids."""
    freqs = position_ids[..., None].float() * inv_freq.float()  # (3, B, L, Dh / 2)
    axes = mrope_axes(section, freqs.shape[-1], interleaved).to(freqs.device)
    freqs = freqs.gather(0, axes.expand(1, *freqs.shape[1:]))[0]  # (B, L, Dh / 2)
    emb = torch.cat([freqs, freqs], dim=-1)  # (B, L, Dh)
    return emb.cos().to(dtype), emb.sin().to(dtype)


class Attention(nn.Module):
    def __init__(self, cfg: TextConfig, layer: int) -> None:
        super().__init__()
        self.layer, self.heads, self.kv_heads, self.head_dim = (
            layer, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim)
        d = cfg.hidden_size
        self.q_proj = nn.Linear(d, self.heads * self.head_dim)
        self.k_proj = nn.Linear(d, self.kv_heads * self.head_dim)
        self.v_proj = nn.Linear(d, self.kv_heads * self.head_dim)
        self.o_proj = nn.Linear(self.heads * self.head_dim, d, bias=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, plan: AttnPlan, cache: KVCache | None) -> Tensor:
        B, L, _ = x.shape
        q = self.q_proj(x).view(B, L, self.heads, self.head_dim).transpose(1, 2)  # (B, H, L, Dh)
        k = self.k_proj(x).view(B, L, self.kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, L, Dh)
        v = self.v_proj(x).view(B, L, self.kv_heads, self.head_dim).transpose(1, 2)
        c, s = cos.unsqueeze(1), sin.unsqueeze(1)  # (B, 1, L, Dh)
        q, k = q * c + rotate_half(q) * s, k * c + rotate_half(k) * s
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # (B, Hkv, L_past + L, Dh)
        out = attend(q, k, v, plan)  # (B, H, L, Dh)
        return self.o_proj(out.transpose(1, 2).reshape(B, L, -1))


class MLP(nn.Module):
    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: TextConfig, layer: int) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.attn = Attention(cfg, layer)
        self.mlp_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, plan: AttnPlan, cache: KVCache | None) -> Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, plan, cache)
        return x + self.mlp(self.mlp_norm(x))


class Decoder(nn.Module):
    """Token embedding, ``num_hidden_layers`` blocks, final RMSNorm (no LM head);
    ``mrope_interleaved``: Qwen3-VL's interleaved M-RoPE layout (:func:`mrope_axes`)."""

    def __init__(self, cfg: TextConfig, mrope_interleaved: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.mrope_interleaved = mrope_interleaved
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        dh = cfg.head_dim
        self.register_buffer("inv_freq", 1.0 / cfg.rope_theta ** (torch.arange(0, dh, 2).float() / dh),
                             persistent=False)
        self.gradient_checkpointing = False

    def forward(self, x: Tensor, position_ids: Tensor, plan: AttnPlan, cache: KVCache | None = None) -> Tensor:
        """x (B, L, D) input embeddings, position_ids (3, B, L) -> hidden states (B, L, D)."""
        inv_freq = rotary_inv_freq(self.inv_freq, self.cfg.rope_theta, self.cfg.head_dim)
        cos, sin = mrope_cos_sin(position_ids, inv_freq, self.cfg.mrope_section, x.dtype,
                                 self.mrope_interleaved)
        for layer in self.layers:
            if self.gradient_checkpointing and self.training and cache is None:
                from torch.utils.checkpoint import checkpoint

                x = checkpoint(layer, x, cos, sin, plan, None, use_reentrant=False)
            else:
                x = layer(x, cos, sin, plan, cache)
        return self.norm(x)
