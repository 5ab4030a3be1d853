"""The Qwen2-VL vision encoder (transformers ``models/qwen2_vl``; Qwen2-VL paper, sec. 2.1).

pixel_values (N, C*Tp*P*P) -> 3-D patch embedding (temporal patch 2, patch 14) -> ``depth``
pre-norm ViT blocks with 2-D rotary positions (h, w) attending within each frame -> a 2x2
patch merger MLP -> (N / 4, D_text), one LLM token per 28x28 pixels.

Patches arrive "block-major": the processor orders each frame's patches by 2x2 merge block
(row of blocks, column of blocks, row in block, column in block), so four consecutive rows
form one merged token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from owl_train.model.attention import attend, flash_usable, rotary_inv_freq, rotate_half, vision_plan
from owl_train.model.config import VisionConfig

__all__ = ["VisionTransformer", "vision_positions", "ACTIVATIONS"]

ACTIVATIONS = {
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "gelu": F.gelu,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
}


def vision_positions(grid_thw: Tensor, merge: int) -> Tensor:
    """(h, w) patch coordinates (N, 2) for all images, in the processor's block-major order."""
    t, h, w = grid_thw[:, 0], grid_thw[:, 1], grid_thw[:, 2]
    per_frame = (h * w).repeat_interleave(t)  # (frames,)
    w_f = w.repeat_interleave(t)
    starts = torch.cumsum(per_frame, 0) - per_frame
    j = torch.arange(int(per_frame.sum()), device=grid_thw.device) - starts.repeat_interleave(per_frame)
    wf = w_f.repeat_interleave(per_frame)
    iw, ih = j % merge, (j // merge) % merge
    bw = (j // (merge * merge)) % (wf // merge)
    bh = j // (merge * wf)
    return torch.stack([bh * merge + ih, bw * merge + iw], dim=-1)


class VisionAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, plan) -> Tensor:
        n, d = x.shape
        q, k, v = self.qkv(x).view(n, 3, self.heads, -1).unbind(1)  # each (N, H, Dh)
        # rotary in float32, as the reference does
        q = (q.float() * cos + rotate_half(q.float()) * sin).to(x.dtype)
        k = (k.float() * cos + rotate_half(k.float()) * sin).to(x.dtype)
        q, k, v = (t.transpose(0, 1).unsqueeze(0) for t in (q, k, v))  # (1, H, N, Dh)
        out = attend(q, k, v, plan)  # (1, H, N, Dh)
        return self.proj(out[0].transpose(0, 1).reshape(n, d))


class VisionBlock(nn.Module):
    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.attn = VisionAttention(cfg.embed_dim, cfg.num_heads)
        hidden = int(cfg.embed_dim * cfg.mlp_ratio)
        self.fc1 = nn.Linear(cfg.embed_dim, hidden)
        self.fc2 = nn.Linear(hidden, cfg.embed_dim)
        self.act = ACTIVATIONS[cfg.hidden_act]

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, plan) -> Tensor:
        x = x + self.attn(self.norm1(x), cos, sin, plan)
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class PatchMerger(nn.Module):
    """LayerNorm, then each 2x2 block of patches (4 * E values) -> MLP -> D_text."""

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.in_dim = cfg.embed_dim * cfg.spatial_merge_size ** 2
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.fc1 = nn.Linear(self.in_dim, self.in_dim)
        self.fc2 = nn.Linear(self.in_dim, cfg.out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x).view(-1, self.in_dim))))  # (N / m^2, D_text)


class VisionTransformer(nn.Module):
    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # Conv3d with kernel == stride is a matrix product over the flattened patch; the weight
        # keeps the checkpoint's (E, C, Tp, P, P) shape.
        self.patch_embed = nn.Parameter(torch.empty(cfg.embed_dim, cfg.in_channels, cfg.temporal_patch_size,
                                                    cfg.patch_size, cfg.patch_size))
        nn.init.normal_(self.patch_embed, std=0.02)
        self.blocks = nn.ModuleList(VisionBlock(cfg) for _ in range(cfg.depth))
        self.merger = PatchMerger(cfg)
        half = cfg.head_dim // 2
        self.register_buffer("inv_freq", 1.0 / cfg.rope_theta ** (torch.arange(0, half, 2).float() / half),
                             persistent=False)

    def forward(self, pixel_values: Tensor, grid_thw: Tensor) -> Tensor:
        """pixel_values (N, C*Tp*P*P), grid_thw (I, 3) in patches -> (N / m^2, D_text)."""
        cfg = self.cfg
        if pixel_values.shape[-1] != cfg.patch_dim:
            raise ValueError(f"pixel_values rows must hold {cfg.patch_dim} values, got {pixel_values.shape[-1]}")
        grid_thw = grid_thw.to(pixel_values.device).long()
        w = self.patch_embed
        x = F.linear(pixel_values.to(w.dtype), w.view(w.shape[0], -1))  # (N, E)
        pos = vision_positions(grid_thw, cfg.spatial_merge_size)  # (N, 2)
        inv_freq = rotary_inv_freq(self.inv_freq, cfg.rope_theta, cfg.head_dim // 2)
        freqs = (pos[..., None].float() * inv_freq).flatten(1)  # (N, Dh / 2)
        emb = torch.cat([freqs, freqs], dim=-1)[:, None, :]  # (N, 1, Dh)
        cos, sin = emb.cos(), emb.sin()
        frames = (grid_thw[:, 1] * grid_thw[:, 2]).repeat_interleave(grid_thw[:, 0])
        cu = F.pad(torch.cumsum(frames, 0), (1, 0))
        plan = vision_plan(cu, x.shape[0], use_flash=flash_usable(x))
        for blk in self.blocks:
            x = blk(x, cos, sin, plan)
        return self.merger(x)
