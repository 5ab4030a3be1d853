"""What the point token adds to the input embeddings: its Fourier code, local vision features
sampled at the point, and the same code on every image patch.

Coordinates: a point (x, y) is normalised to [0, 1] in the frame of the image it follows (x
right, y down). On an image of merged grid (H', W') (one cell per 2x2 ViT patches, 28x28 pixels
of the resized image) the point's grid coordinate is u = clamp(x·W' − 0.5, 0, W' − 1),
v = clamp(y·H' − 0.5, 0, H' − 1) (pixel-centre convention: cell (r, c) has its centre at
u = c, v = r, i.e. at x = (c + 0.5) / W', y = (r + 0.5) / H'), the same rule
:func:`owl_train.model.rope.get_rope_index` uses for the point's rotary position.

- :class:`PointEncoder`: a linear map of Fourier features of (x, y) (NeRF-style bands), added
  to the ``<|point|>`` embedding (variant (b)), and with ``point_patch_code`` to every image
  token at its cell centre (:func:`patch_centres`, variant (f)).
- :class:`FocusSampler` (variant (d), ``point_focus``): the idea of Ferret's spatial-aware
  visual sampler (You et al. 2023) and Osprey's mask pooling (Yuan et al. 2024): the point
  token carries features of what is at the point, bilinear on the merged grid.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from owl_train.model.config import VisionConfig
from owl_train.model.rope import vision_runs

__all__ = ["fourier_features", "PointEncoder", "FocusSampler", "bilinear_cells", "patch_centres", "point_frames"]


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
        """points (N, 2) (x, y) in [0, 1] -> (N, D)."""
        return self.proj(fourier_features(points, self.bands).to(self.proj.weight.dtype))  # (N, D)


def patch_centres(grid_thw: Tensor, merge: int) -> Tensor:
    """Centres (N_tok, 2) as (x, y) in [0, 1] of every merged token of ``grid_thw`` (N_runs, 3)
    (ViT patches), in the order the ViT emits them: run by run, frame by frame, row-major:
    cell (r, c) of a (H', W') grid has ((c + 0.5) / W', (r + 0.5) / H')."""
    g = grid_thw.long()
    t, h, w = g[:, 0], g[:, 1] // merge, g[:, 2] // merge
    n = t * h * w  # (N_runs,)
    k = torch.arange(int(n.sum()), device=g.device) - torch.repeat_interleave(torch.cumsum(n, 0) - n, n)
    hh, ww = torch.repeat_interleave(h, n), torch.repeat_interleave(w, n)
    c, r = k % ww, (k // ww) % hh
    return torch.stack([(c.float() + 0.5) / ww.float(), (r.float() + 0.5) / hh.float()], dim=-1)  # (N_tok, 2)


def bilinear_cells(points: Tensor, grid_hw: Tensor) -> tuple[Tensor, Tensor]:
    """The (up to) four merged cells around each point and their bilinear weights.

    Args:
        points: (N, 2) (x, y) in [0, 1].
        grid_hw: (N, 2) int, each point's merged grid (H', W').

    Returns:
        cells: (N, 4) int64 row-major cell index r·W' + c of (r0, c0), (r0, c1), (r1, c0),
            (r1, c1), with r1 = min(r0 + 1, H' − 1) (a border point repeats a cell at weight 0);
        weights: (N, 4) float32, summing to 1 (pixel-centre convention, clamped at the border).
    """
    hh, ww = grid_hw[:, 0].float(), grid_hw[:, 1].float()
    u = torch.minimum(torch.clamp(points[:, 0].float() * ww - 0.5, min=0.0), ww - 1)  # (N,)
    v = torch.minimum(torch.clamp(points[:, 1].float() * hh - 0.5, min=0.0), hh - 1)
    c0, r0 = u.floor(), v.floor()
    au, av = u - c0, v - r0
    c1, r1 = torch.minimum(c0 + 1, ww - 1), torch.minimum(r0 + 1, hh - 1)
    rows = torch.stack([r0, r0, r1, r1], dim=1)  # (N, 4)
    cols = torch.stack([c0, c1, c0, c1], dim=1)
    cells = (rows * ww[:, None] + cols).long()
    weights = torch.stack([(1 - av) * (1 - au), (1 - av) * au, av * (1 - au), av * au], dim=1)
    return cells, weights


def point_frames(input_ids: Tensor, image_token_id: int, point_token_id: int,
                 crop_token_id: int | None = None) -> Tensor:
    """(N_pt,) int64: the ``image_grid_thw`` row of the image each ``<|point|>`` of ``input_ids``
    (B, L) follows (the last image run before it), points in reading order.

    Raises:
        ValueError: a point token with no image before it.
    """
    starts, is_crop = vision_runs(input_ids, image_token_id, crop_token_id)
    img_runs = (~is_crop).nonzero().view(-1)
    pt_idx = (input_ids == point_token_id).reshape(-1).nonzero().view(-1)
    q = torch.searchsorted(starts[img_runs], pt_idx, right=True) - 1
    if bool((q < 0).any()):
        raise ValueError("a <|point|> token has no image before it; it must follow its image "
                         "(...<|vision_end|><|point|>)")
    return img_runs[q]


class FocusSampler(nn.Module):
    """Variant (d): features of what is at the point, for the point token's input embedding.

    Source, and why it is local: the ViT attends globally within a frame, so its output at any
    cell depends on every pixel of the image; a point feature read from it carries the whole
    image, and the model could answer from context rather than from the point. We take the
    ViT's own *patch embedding* instead (a linear map of one 14x14 patch, no attention: the
    tower's weights, trained with it when ``freeze_vision`` is off), normalise each patch,
    concatenate each 2x2 block (4E values, the merger's layout) and pass it through a small
    merger-shaped MLP of our own (4E -> 4E -> GELU -> D; the model's merger was trained on ViT
    block outputs, not raw patch embeddings). The MLP's last layer starts at zero, so a new
    model starts as variant (b) and this path trains from the first step (its gradient is
    the sampled features). Sampling is bilinear on the merged grid (:func:`bilinear_cells`),
    so the result depends on the pixels of at most 2x2 merged cells (56x56 resized pixels)
    around the point and on nothing else, bit for bit.

    The first layer's random init comes from a fixed seed (``seed``), so a checkpoint without
    these weights loads the same every time; ``OwlVL.reset_parameters`` redraws it anyway.
    """

    def __init__(self, vision: VisionConfig, dim: int, seed: int = 0) -> None:
        super().__init__()
        self.merge = vision.spatial_merge_size
        self.in_dim = vision.embed_dim * self.merge ** 2
        self.norm = nn.LayerNorm(vision.embed_dim, eps=1e-6)
        self.fc1 = nn.Linear(self.in_dim, self.in_dim)
        self.fc2 = nn.Linear(self.in_dim, dim)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            bound = 1 / math.sqrt(self.in_dim)
            self.fc1.weight.copy_(torch.rand(self.fc1.weight.shape, generator=g) * 2 * bound - bound)
            self.fc1.bias.zero_()
            self.fc2.weight.zero_()
            self.fc2.bias.zero_()

    def forward(self, pixel_values: Tensor, image_grid_thw: Tensor, frames: Tensor, points: Tensor,
                patch_embed: Tensor) -> Tensor:
        """Focus features (N_pt, D) for points (N_pt, 2) on the images ``frames`` (N_pt,) (rows of
        ``image_grid_thw`` (N_runs, 3)); ``pixel_values`` (N_patches, C*Tp*P*P) in the
        processor's block-major order; ``patch_embed`` the ViT's (E, C, Tp, P, P) weight.
        Frame 0 of a multi-frame image is used."""
        m2 = self.merge ** 2
        grid = image_grid_thw.to(pixel_values.device).long()
        n_patch = grid.prod(-1)
        first = torch.cumsum(n_patch, 0) - n_patch  # (N_runs,) first patch row of each run
        hw = grid[frames, 1:] // self.merge  # (N_pt, 2) merged (H', W')
        cells, weights = bilinear_cells(points.to(pixel_values.device), hw)  # (N_pt, 4)
        rows = first[frames][:, None, None] + cells[:, :, None] * m2 + torch.arange(m2, device=grid.device)
        pix = pixel_values[rows]  # (N_pt, 4, m², C*Tp*P*P)
        w = patch_embed
        e = F.linear(pix.to(w.dtype), w.view(w.shape[0], -1))  # (N_pt, 4, m², E)
        f = self.fc2(F.gelu(self.fc1(self.norm(e).flatten(2))))  # (N_pt, 4, D)
        return (weights.to(f.dtype)[:, :, None] * f).sum(dim=1)  # (N_pt, D)
