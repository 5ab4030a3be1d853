"""M-RoPE position ids as a pure, vectorised function (no weights, no config objects).

The model and the data collator both call :func:`get_rope_index`. Without points it returns
exactly what transformers' ``Qwen2VLModel.get_rope_index`` returns on every real token
(``models/qwen2_vl/modeling_qwen2_vl.py``), computed with whole-batch tensor ops: no Python loop
per sample, per image or per token.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["get_rope_index", "PAD_POSITION"]

PAD_POSITION = 1  # written at padding tokens (transformers 4.x wrote 1, 5.x writes 0; never attended)


def get_rope_index(
    input_ids: Tensor,
    image_grid_thw: Tensor | None = None,
    attention_mask: Tensor | None = None,
    *,
    image_token_id: int,
    spatial_merge_size: int = 2,
    point_token_id: int | None = None,
    points: Tensor | None = None,
    segment_ids: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Three-axis (t, h, w) rotary position ids for a batch of token rows.

    Args:
        input_ids: (B, L) token ids; each image is one run of ``image_token_id`` tokens
            (T * H' * W' of them, H' = H / merge, W' = W / merge).
        image_grid_thw: (N_img, 3) grids in ViT patches (before merging), one row per image in
            reading order over the batch (row 0's images, then row 1's, ...).
        attention_mask: (B, L) 1 for real tokens, 0 for padding (left or right). None: all real.
        image_token_id: the ``<|image_pad|>`` id.
        spatial_merge_size: the merger's m (2 for Qwen2-VL).
        point_token_id, points: the ``<|point|>`` id and (N_pt, 2) points (x, y), normalised to
            [0, 1] in the frame of the image they follow (x right, y down), one per point token
            in reading order. With ``points=None`` point tokens are plain text.
        segment_ids: (B, L) ints; a packed row holds several segments, and a change of id starts
            a new one whose positions restart at 0, exactly as if it were alone in its row.

    Returns:
        position_ids: (3, B, L) axes (t, h, w): int64, or float32 when ``points`` is given (the
            point's h and w are fractional). Padding tokens hold ``PAD_POSITION``.
        rope_deltas: (B, 1) int64: (largest id + 1) - (number of real tokens), over the row's
            last segment; a token generated next at real index n gets position n + delta.

    Rules (``cur`` = the largest id so far in the segment, plus one; 0 at the segment start):
        - text token (anything not an image pad or a point, e.g. stage-2 virtual tokens):
          (cur, cur, cur); cur += 1;
        - image, merged grid (T, H', W'), starting at s = cur: patch (t, r, c) gets
          (s + t, s + r, s + c), row-major; then cur = s + max(T, H', W');
        - point (x, y) after that image: (s, s + clamp(y·H' − 0.5, 0, H'−1),
          s + clamp(x·W' − 0.5, 0, W'−1)): it sits where it points, at a patch centre it equals
          that patch's ids. It never holds the largest id (``<|vision_end|>`` before it already
          has a larger one), so ``cur`` stays an integer; in general we define
          cur = floor(largest id) + 1.

    Worked example (m = 2; one image of grid_thw (1, 4, 6) -> merged (1, 2, 3), point
    (x, y) = (0.6, 0.6))::

        token   a  b  <vs> [6 x <image_pad>]                    <ve> <point> c  d
        t       0  1  2     3   3   3   3   3   3                6    3       7  8
        h       0  1  2     3   3   3   4   4   4                6    3.7     7  8
        w       0  1  2     3   4   5   3   4   5                6    4.3     7  8

    s = 3; the image spans max(1, 2, 3) = 3 ids so ``<|vision_end|>`` gets 6; the point's
    h = 3 + (0.6·2 − 0.5) = 3.7 and w = 3 + (0.6·3 − 0.5) = 4.3 (a point at x = 0.9 would
    clamp to the last column, w = 5); rope_delta = 9 − 13 = −4.
    """
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (B, L), got shape {tuple(input_ids.shape)}")
    B, L = input_ids.shape
    dev = input_ids.device
    real = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    is_img = (input_ids == image_token_id) & real
    use_points = points is not None and point_token_id is not None
    is_pt = (input_ids == point_token_id) & real if use_points else torch.zeros_like(real)
    is_text = real & ~is_img & ~is_pt
    ar = torch.arange(L, device=dev).expand(B, L)  # column index

    # segments: a change of segment id starts a new one (one segment per row without ids)
    seg_start = torch.zeros_like(real)
    seg_start[:, 0] = True
    if segment_ids is not None:
        seg_start[:, 1:] |= segment_ids[:, 1:] != segment_ids[:, :-1]
        seg_first = torch.cummax(torch.where(seg_start, ar, 0), dim=1).values  # (B, L) column of segment start
    else:
        seg_first = torch.zeros_like(input_ids)

    # image runs: flat index of each image's first token; work on image tokens only from here
    prev_img = torch.zeros_like(is_img)
    prev_img[:, 1:] = is_img[:, :-1]
    starts = (is_img & ~(prev_img & ~seg_start)).reshape(-1).nonzero().view(-1)  # (N_img,)
    n_img = starts.numel()
    n_grid = 0 if image_grid_thw is None else image_grid_thw.shape[0]
    if n_img != n_grid:
        raise ValueError(f"input_ids hold {n_img} image runs but image_grid_thw has {n_grid} rows")
    adv = is_text.long()  # (B, L) how far each token moves cur
    if n_img:
        grid = image_grid_thw.to(dev).long()
        gt, gh, gw = grid[:, 0], grid[:, 1] // spatial_merge_size, grid[:, 2] // spatial_merge_size
        img_idx = is_img.reshape(-1).nonzero().view(-1)  # (N_tok,)
        o = torch.searchsorted(starts, img_idx, right=True) - 1  # image ordinal of each image token
        counts = torch.bincount(o, minlength=n_img)
        if not torch.equal(counts, gt * gh * gw):
            bad = int((counts != gt * gh * gw).nonzero()[0, 0])
            raise ValueError(f"image {bad} has {int(counts[bad])} <|image_pad|> tokens but its grid "
                             f"{grid[bad].tolist()} needs {int((gt * gh * gw)[bad])}")
        adv.view(-1).index_add_(0, starts, torch.maximum(gt, torch.maximum(gh, gw)))  # span on the first token

    cum = torch.cumsum(adv, dim=1)
    excl = cum - adv  # cur before each token, counted from the row start
    cur = excl if segment_ids is None else excl - excl.gather(1, seg_first)  # ... from the segment start
    cur_f = cur.reshape(-1)

    dtype = torch.float32 if use_points else torch.long
    pos = cur.to(dtype).unsqueeze(0).repeat(3, 1, 1)  # (3, B, L)
    pos_f = pos.view(3, -1)
    if n_img:
        s_img = cur_f[starts]  # (N_img,) s of each image
        k = img_idx - starts[o]  # offset inside the image
        gho, gwo = gh[o], gw[o]
        thw = torch.stack([k // (gho * gwo), (k // gwo) % gho, k % gwo]) + s_img[o]  # (3, N_tok)
        pos_f[:, img_idx] = thw.to(dtype)
    if use_points:
        pt_idx = is_pt.reshape(-1).nonzero().view(-1)
        if pt_idx.numel() != points.shape[0]:
            raise ValueError(f"input_ids hold {pt_idx.numel()} point tokens but points has {points.shape[0]} rows")
        if pt_idx.numel():
            o = torch.searchsorted(starts, pt_idx, right=True) - 1  # the last image before each point
            first = (pt_idx // L) * L + seg_first.reshape(-1)[pt_idx]
            if n_img == 0 or bool(((o < 0) | (starts[o.clamp(min=0)] < first)).any()):
                raise ValueError("a <|point|> token has no image before it in its row/segment; "
                                 "it must follow its image (...<|vision_end|><|point|>)")
            s = s_img[o].float()
            xy = points.to(dev, torch.float32)
            hh, ww = gh[o].float(), gw[o].float()
            ph = s + torch.minimum(torch.clamp(xy[:, 1] * hh - 0.5, min=0.0), hh - 1)
            pw = s + torch.minimum(torch.clamp(xy[:, 0] * ww - 0.5, min=0.0), ww - 1)
            pos_f[:, pt_idx] = torch.stack([s, ph, pw])
    if attention_mask is not None:
        pos.masked_fill_(~real.unsqueeze(0), PAD_POSITION)

    # rope_deltas over each row's last segment (the one holding its last real token)
    if segment_ids is None:
        deltas = cum[:, -1:] - real.sum(dim=1, keepdim=True)
    else:
        last = torch.where(real, ar, 0).amax(dim=1, keepdim=True)  # (B, 1)
        cur_end = cum.gather(1, last) - excl.gather(1, seg_first.gather(1, last))
        in_last = real & (seg_first == seg_first.gather(1, last))
        deltas = cur_end - in_last.sum(dim=1, keepdim=True)
    return pos, deltas
