"""Attention dispatch: one function, two backends (no class per backend).

- torch SDPA everywhere (CPU and GPU); padding, packed segments and the causal rule become one
  boolean mask (block-diagonal for packed rows);
- flash-attention's variable-length kernel (``flash_attn.flash_attn_varlen_func``) when it is
  importable, the tensors are on CUDA in fp16/bf16, and there is no KV cache: the real tokens
  are gathered into one (N_tok, H, Dh) stream cut by ``cu_seqlens``.

A plan (:class:`AttnPlan`) is built once per forward and shared by every layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

try:  # pragma: no cover - GPU machines only
    from flash_attn import flash_attn_varlen_func as _flash_varlen
except ImportError:  # flash-attn is optional
    _flash_varlen = None

__all__ = ["AttnPlan", "attend", "text_plan", "vision_plan", "flash_usable", "rotate_half", "rotary_inv_freq"]


@dataclass(frozen=True)
class AttnPlan:
    """How to attend. ``mask``: (B, 1, Lq, Lk) bool, True = may attend (SDPA); ``token_index``
    and ``cu_seqlens``: the varlen stream (flash); neither: plain (causal or full) SDPA."""

    is_causal: bool
    mask: Tensor | None = None
    token_index: Tensor | None = None  # (N_tok,) flat indices into B * L
    cu_seqlens: Tensor | None = None  # (S + 1,) int32
    max_seqlen: int = 0


def _half_dtype(x: Tensor) -> torch.dtype | None:
    """The 16-bit dtype attention runs in for ``x``: its own, or CUDA autocast's (stage 1 keeps fp32
    weights under bf16 autocast, so activations arrive fp32 while the matmuls run in bf16)."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.dtype
    if x.is_cuda and torch.is_autocast_enabled("cuda"):
        dt = torch.get_autocast_dtype("cuda")
        return dt if dt in (torch.float16, torch.bfloat16) else None
    return None


def flash_usable(x: Tensor) -> bool:
    """flash-attn's varlen kernel applies: installed, CUDA, and 16-bit (own dtype or autocast)."""
    return _flash_varlen is not None and x.is_cuda and _half_dtype(x) is not None


def rotary_inv_freq(buffer: Tensor, theta: float, dim: int) -> Tensor:
    """Rotary inverse frequencies theta^(-2j/dim), j < dim/2, in float32 on ``buffer``'s device.

    ``model.to(torch.bfloat16)`` casts buffers too; rotary angles (position x frequency) need
    float32, as transformers keeps them, so a buffer that is no longer float32 is recomputed."""
    if buffer.dtype == torch.float32:
        return buffer
    return 1.0 / theta ** (torch.arange(0, dim, 2, device=buffer.device, dtype=torch.float32) / dim)


def _cu_from_keys(keys: Tensor) -> tuple[Tensor, int]:
    """Cumulative lengths of the runs of equal consecutive values in ``keys`` (N,)."""
    change = torch.ones_like(keys, dtype=torch.bool)
    change[1:] = keys[1:] != keys[:-1]
    starts = change.nonzero().view(-1)
    bounds = torch.cat([starts, torch.tensor([keys.numel()], device=keys.device)])
    return bounds.to(torch.int32), int((bounds[1:] - bounds[:-1]).max()) if keys.numel() else 0


def text_plan(
    batch: int,
    q_len: int,
    past_len: int,
    device: torch.device,
    attention_mask: Tensor | None = None,
    segment_ids: Tensor | None = None,
    use_flash: bool = False,
) -> AttnPlan:
    """Causal plan for the decoder.

    attention_mask: (B, past_len + q_len), 1 real / 0 padding; segment_ids: (B, q_len), a packed
    row's segments attend only within themselves (only without a cache). A padding query keeps
    attention to itself, so no row of the mask is empty (no NaN); its output is never used.
    """
    if segment_ids is not None and past_len:
        raise ValueError("segment_ids (packed rows) cannot be combined with a KV cache")
    if attention_mask is not None and bool(attention_mask.all()):
        attention_mask = None
    if use_flash and past_len == 0:
        real = torch.ones(batch, q_len, dtype=torch.bool, device=device) if attention_mask is None \
            else attention_mask.bool()
        token_index = real.reshape(-1).nonzero().view(-1)
        rows = token_index // q_len
        seg = segment_ids.reshape(-1)[token_index].long() if segment_ids is not None else torch.zeros_like(rows)
        if seg.numel():
            seg = seg - seg.min()
        keys = rows * (int(seg.max()) + 1 if seg.numel() else 1) + seg  # one run per (row, segment)
        cu, mx = _cu_from_keys(keys)
        return AttnPlan(is_causal=True, token_index=token_index, cu_seqlens=cu, max_seqlen=mx)
    if attention_mask is None and segment_ids is None:
        if past_len == 0:
            return AttnPlan(is_causal=True)
        if q_len == 1:
            return AttnPlan(is_causal=False)
    q_pos = torch.arange(past_len, past_len + q_len, device=device)
    k_pos = torch.arange(past_len + q_len, device=device)
    mask = (k_pos[None, :] <= q_pos[:, None]).expand(batch, q_len, -1)  # (B, Lq, Lk)
    if attention_mask is not None:
        mask = mask & attention_mask.bool()[:, None, :]
    if segment_ids is not None:
        mask = mask & (segment_ids[:, :, None] == segment_ids[:, None, :])
    mask = mask | (k_pos[None, :] == q_pos[:, None])  # a query always sees itself
    return AttnPlan(is_causal=False, mask=mask.unsqueeze(1))


def vision_plan(cu_seqlens: Tensor, n: int, use_flash: bool = False) -> AttnPlan:
    """Bidirectional plan for the ViT: each frame (a ``cu_seqlens`` run of patches) attends within
    itself. SDPA runs frames of one size as one batch, otherwise frame by frame (a block-diagonal
    mask over all patches would cost N^2 memory and a slower masked kernel)."""
    lengths = cu_seqlens[1:] - cu_seqlens[:-1]
    mx = int(lengths.max())
    if use_flash:
        return AttnPlan(is_causal=False, token_index=torch.arange(n, device=cu_seqlens.device),
                        cu_seqlens=cu_seqlens.to(torch.int32), max_seqlen=mx)
    if lengths.numel() == 1:
        return AttnPlan(is_causal=False)
    return AttnPlan(is_causal=False, cu_seqlens=cu_seqlens, max_seqlen=mx)


def rotate_half(x: Tensor) -> Tensor:
    """(..., D) -> (..., D): (x1, x2) -> (-x2, x1) over the two halves of the last axis, the
    rotation every rotary embedding here applies (Qwen2-VL's ``rotate_half``)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def _repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    if n_rep == 1:
        return x
    b, h, l, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, l, d).reshape(b, h * n_rep, l, d)


def attend(q: Tensor, k: Tensor, v: Tensor, plan: AttnPlan) -> Tensor:
    """q (B, H, Lq, Dh), k and v (B, Hkv, Lk, Dh) -> (B, H, Lq, Dh); Hkv divides H (GQA)."""
    B, H, Lq, Dh = q.shape
    if plan.token_index is not None:  # pragma: no cover - flash-attn on CUDA only
        dt = _half_dtype(q) or q.dtype  # fp32 rotary outputs under autocast go in as bf16/fp16
        flat = lambda t: t.to(dt).transpose(1, 2).reshape(B * t.shape[2], t.shape[1], Dh)[plan.token_index]
        out = _flash_varlen(flat(q), flat(k), flat(v), plan.cu_seqlens, plan.cu_seqlens,
                            plan.max_seqlen, plan.max_seqlen, causal=plan.is_causal)
        full = q.new_zeros(B * Lq, H, Dh, dtype=out.dtype)
        full[plan.token_index] = out
        return full.view(B, Lq, H, Dh).transpose(1, 2)
    k, v = _repeat_kv(k, H // k.shape[1]), _repeat_kv(v, H // v.shape[1])
    if plan.mask is None and plan.cu_seqlens is not None:  # ViT frames of a batch of images
        lens = (plan.cu_seqlens[1:] - plan.cu_seqlens[:-1]).tolist()
        if B == 1 and len(set(lens)) == 1:  # equal frames: one batched call, (F, H, n, Dh)
            fr = lambda t: t[0].unflatten(1, (len(lens), lens[0])).transpose(0, 1)
            out = F.scaled_dot_product_attention(fr(q), fr(k), fr(v))  # (F, H, n, Dh)
            return out.transpose(0, 1).flatten(1, 2).unsqueeze(0)
        outs = [F.scaled_dot_product_attention(a, b, c) for a, b, c in
                zip(q.split(lens, 2), k.split(lens, 2), v.split(lens, 2))]
        return torch.cat(outs, dim=2)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=plan.mask, is_causal=plan.is_causal)
