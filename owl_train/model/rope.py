"""M-RoPE position ids as a pure, vectorised function (no weights, no config objects).

The model and the data collator both call :func:`get_rope_index`. Without points it returns
exactly what transformers' ``Qwen2VLModel.get_rope_index`` returns on every real token
(``models/qwen2_vl/modeling_qwen2_vl.py``), computed with whole-batch tensor ops: no Python loop
per sample, per image or per token.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["get_rope_index", "vision_runs", "PAD_POSITION", "PLACEMENTS"]

PAD_POSITION = 1  # written at padding tokens (transformers 4.x wrote 1, 5.x writes 0; never attended)
PLACEMENTS = ("image", "text")  # where <|point|> goes: its image's rotary frame, or the next text position


def vision_runs(input_ids: Tensor, image_token_id: int, crop_token_id: int | None = None,
                real: Tensor | None = None, seg_start: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The runs of vision placeholders, one per ``image_grid_thw`` row, in reading order.

    Args:
        input_ids: (B, L) token ids.
        image_token_id, crop_token_id: ``<|image_pad|>`` and ``<|crop_pad|>`` (None: no crops).
        real: (B, L) bool, padding False (None: all real).
        seg_start: (B, L) bool, True where a packed segment starts (None: the row starts only).

    Returns:
        starts: (N_runs,) int64 flat indices (into B * L) of each run's first token;
        is_crop: (N_runs,) bool, True for a foveal-crop run.
    """
    real = torch.ones_like(input_ids, dtype=torch.bool) if real is None else real
    is_img = (input_ids == image_token_id) & real
    is_crop = (input_ids == crop_token_id) & real if crop_token_id is not None else torch.zeros_like(real)
    same = torch.zeros_like(real)
    same[:, 1:] = (is_img[:, 1:] & is_img[:, :-1]) | (is_crop[:, 1:] & is_crop[:, :-1])
    if seg_start is not None:
        same &= ~seg_start
    starts = ((is_img | is_crop) & ~same).reshape(-1).nonzero().view(-1)  # (N_runs,)
    return starts, is_crop.reshape(-1)[starts]

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
    point_placement: str = "image",
    crop_token_id: int | None = None,
    crop_boxes: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Three-axis (t, h, w) rotary position ids for a batch of token rows.

    Args:
        input_ids: (B, L) token ids; each image is one run of ``image_token_id`` tokens
            (T * H' * W' of them, H' = H / merge, W' = W / merge); each foveal crop one run of
            ``crop_token_id`` tokens right after its image's ``<|point|>``.
        image_grid_thw: (N_runs, 3) grids in ViT patches (before merging), one row per vision
            run (image or crop) in reading order over the batch (row 0's runs, then row 1's, ...).
        attention_mask: (B, L) 1 for real tokens, 0 for padding (left or right). None: all real.
        image_token_id: the ``<|image_pad|>`` id.
        spatial_merge_size: the merger's m (2 for Qwen2-VL).
        point_token_id, points: the ``<|point|>`` id and (N_pt, 2) points (x, y), normalised to
            [0, 1] in the frame of the image they follow (x right, y down), one per point token
            in reading order. With ``points=None`` point tokens are plain text.
        segment_ids: (B, L) ints; a packed row holds several segments, and a change of id starts
            a new one whose positions restart at 0, exactly as if it were alone in its row.
        point_placement: ``"image"``: the point sits in its image's rotary frame (below);
            ``"text"``: it is numbered as a text token (variant (a): known by its Fourier code only).
        crop_token_id, crop_boxes: the ``<|crop_pad|>`` id and (N_crop, 4) crop squares
            (x0, y0, x1, y1) normalised to [0, 1] in the frame of the image they follow, one per
            crop run in reading order (Describe Anything's focal prompt, our variant (e)).

    Returns:
        position_ids: (3, B, L) axes (t, h, w): int64, or float32 when ``points`` or
            ``crop_boxes`` is given (fractional h and w). Padding tokens hold ``PAD_POSITION``.
        rope_deltas: (B, 1) int64: (largest id + 1) - (number of real tokens), over the row's
            last segment; a token generated next at real index n gets position n + delta.

    Raises:
        ValueError: runs and grid rows disagree in number or size, a point or crop has no image
            before it in its row/segment, or points/crop_boxes do not match their tokens.

    Rules (``cur`` = the largest id so far in the segment, plus one; 0 at the segment start):
        - text token (anything not an image pad, crop pad or image-placed point, e.g. stage-2
          virtual tokens, or the point with ``point_placement="text"``): (cur, cur, cur); cur += 1;
        - image, merged grid (T, H', W'), starting at s = cur: patch (t, r, c) gets
          (s + t, s + r, s + c), row-major; then cur = s + max(T, H', W');
        - point (x, y) after that image, ``point_placement="image"``: (s, s + clamp(y·H' − 0.5,
          0, H'−1), s + clamp(x·W' − 0.5, 0, W'−1)): it sits where it points, at a patch
          centre it equals that patch's ids. It never holds the largest id (``<|vision_end|>``
          before it already has a larger one), so ``cur`` stays an integer; in general we define
          cur = floor(largest id) + 1;
        - crop token (r, c) of a crop of merged grid (T_c, H_c, W_c) over the box (x0, y0, x1, y1)
          of that image: the point rule at its centre x = x0 + (c + 0.5) / W_c · (x1 − x0),
          y = y0 + (r + 0.5) / H_c · (y1 − y0); crop tokens do not move cur.

    Worked example (m = 2; one image of grid_thw (1, 4, 6) -> merged (1, 2, 3), point
    (x, y) = (0.6, 0.6))::

        token   a  b  <vs> [6 x <image_pad>]                    <ve> <point> c  d
        t       0  1  2     3   3   3   3   3   3                6    3       7  8
        h       0  1  2     3   3   3   4   4   4                6    3.7     7  8
        w       0  1  2     3   4   5   3   4   5                6    4.3     7  8

    s = 3; the image spans max(1, 2, 3) = 3 ids so ``<|vision_end|>`` gets 6; the point's
    h = 3 + (0.6·2 − 0.5) = 3.7 and w = 3 + (0.6·3 − 0.5) = 4.3 (a point at x = 0.9 would
    clamp to the last column, w = 5); rope_delta = 9 − 13 = −4.

    The same row with ``point_placement="text"``: the point is (7, 7, 7), c and d are 8 and 9,
    rope_delta = 10 − 13 = −3. With a crop of grid_thw (1, 4, 4) (merged 2 x 2) over the box
    (0.4, 0.2, 0.8, 0.6) after the image-placed point (4 ``<|crop_pad|>`` between <point> and c;
    image_grid_thw = [[1, 4, 6], [1, 4, 4]]): centres x = 0.5, 0.7 and y = 0.3, 0.5 give
    w = 3 + (0.5·3 − 0.5) = 4.0, 3 + (0.7·3 − 0.5) = 4.6 and h = 3 + (0.3·2 − 0.5) = 3.1,
    3 + (0.5·2 − 0.5) = 3.5, all with t = 3, so the crop tokens are (t, h, w) = (3, 3.1, 4.0),
    (3, 3.1, 4.6), (3, 3.5, 4.0), (3, 3.5, 4.6) (clamped like the point near a border); c and d
    stay 7 and 8, rope_delta = 9 − 17 = −8.
    """
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (B, L), got shape {tuple(input_ids.shape)}")
    if point_placement not in PLACEMENTS:
        raise ValueError(f"point_placement={point_placement!r} is invalid: use one of {PLACEMENTS}")
    real = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    use_points = points is not None and point_token_id is not None
    kinds = _token_kinds(input_ids, real, image_token_id, crop_token_id, point_token_id if use_points else None,
                         point_placement)
    seg_start, seg_first = _segments(real, segment_ids)
    runs = _vision_runs_of(input_ids, image_grid_thw, image_token_id, crop_token_id, real, seg_start, kinds,
                           spatial_merge_size)
    cum, excl, cur = _text_ids(kinds.text, runs, seg_first, segment_ids is not None)
    runs = dataclasses.replace(runs, s=cur.reshape(-1)[runs.starts])  # (N_runs,) each run's first id
    dtype = torch.float32 if use_points or crop_boxes is not None else torch.long
    pos = cur.to(dtype).unsqueeze(0).repeat(3, 1, 1)  # (3, B, L)
    pos_f = pos.view(3, -1)  # (3, B * L), a view: writes land in pos
    pos_f[:, runs.tokens[runs.image_token]] = runs.image_ids()[:, runs.image_token].to(dtype)
    L = input_ids.shape[1]
    if use_points:
        assert points is not None
        pt_idx = kinds.point.reshape(-1).nonzero().view(-1)
        if pt_idx.numel() != points.shape[0]:
            raise ValueError(f"input_ids hold {pt_idx.numel()} point tokens but points has {points.shape[0]} rows")
        if pt_idx.numel() and point_placement == "image":
            frames = _frame_of(runs, pt_idx, L, seg_first, "<|point|>")
            pos_f[:, pt_idx] = _in_frame(runs, frames, points.to(input_ids.device, torch.float32))
    n_crop = int(runs.is_crop.sum())
    n_box = 0 if crop_boxes is None else crop_boxes.shape[0]
    if (n_crop or crop_boxes is not None) and n_box != n_crop:
        raise ValueError(f"input_ids hold {n_crop} crop runs but crop_boxes has {n_box} rows")
    if n_crop:
        assert crop_boxes is not None
        ct = ~runs.image_token  # crop tokens among the vision tokens
        pos_f[:, runs.tokens[ct]] = _crop_ids(runs, crop_boxes, L, seg_first)
    if attention_mask is not None:
        pos.masked_fill_(~real.unsqueeze(0), PAD_POSITION)
    return pos, _rope_deltas(cum, excl, real, seg_first, segment_ids is not None)


@dataclass(frozen=True)
class _Kinds:
    """(B, L) bool masks over real tokens: image pads, crop pads, point tokens (only with points),
    and text (what moves ``cur`` by one: everything else, the point too with ``"text"`` placement)."""

    image: Tensor
    crop: Tensor
    point: Tensor
    text: Tensor


def _token_kinds(input_ids: Tensor, real: Tensor, image_token_id: int, crop_token_id: int | None,
                 point_token_id: int | None, point_placement: str) -> _Kinds:
    """Which real token is which (:class:`_Kinds`); ``point_token_id`` None: points are text."""
    is_img = (input_ids == image_token_id) & real
    is_crop = (input_ids == crop_token_id) & real if crop_token_id is not None else torch.zeros_like(real)
    is_pt = (input_ids == point_token_id) & real if point_token_id is not None else torch.zeros_like(real)
    in_frame_pt = is_pt if point_placement == "image" else torch.zeros_like(real)
    return _Kinds(is_img, is_crop, is_pt, real & ~is_img & ~is_crop & ~in_frame_pt)


def _segments(real: Tensor, segment_ids: Tensor | None) -> tuple[Tensor, Tensor]:
    """seg_start (B, L) bool, True where a segment starts (a change of segment id; column 0
    always), and seg_first (B, L) int64, the column of each token's segment start (0 without ids)."""
    seg_start = torch.zeros_like(real)
    seg_start[:, 0] = True
    if segment_ids is None:
        return seg_start, torch.zeros(real.shape, dtype=torch.long, device=real.device)
    seg_start[:, 1:] |= segment_ids[:, 1:] != segment_ids[:, :-1]
    ar = torch.arange(real.shape[1], device=real.device).expand(real.shape)  # (B, L) column index
    return seg_start, torch.cummax(torch.where(seg_start, ar, 0), dim=1).values


@dataclass(frozen=True)
class _Runs:
    """The batch's vision runs (images and crops, reading order) and their tokens.

    Per run (N_runs,): ``starts`` flat index (into B * L) of its first token, ``is_crop``, merged
    grid ``t, h, w``, ``s`` its first id (set once ``cur`` is known). Per vision token (N_tok,):
    ``tokens`` flat index, ``run`` its run's ordinal, ``offset`` its place in the run.
    """

    starts: Tensor
    is_crop: Tensor
    t: Tensor
    h: Tensor
    w: Tensor
    tokens: Tensor
    run: Tensor
    s: Tensor | None = None

    @property
    def offset(self) -> Tensor:
        return self.tokens - self.starts[self.run]

    @property
    def image_token(self) -> Tensor:
        """(N_tok,) bool: the token belongs to an image, not a crop."""
        return ~self.is_crop[self.run]

    @property
    def image_runs(self) -> Tensor:
        """(N_img,) the run ordinals (grid rows) of the images."""
        return (~self.is_crop).nonzero().view(-1)

    def image_ids(self) -> Tensor:
        """(3, N_tok) (t, h, w) ids of every vision token by the image rule, (s + t, s + r, s + c)."""
        k, o = self.offset, self.run
        h, w = self.h[o], self.w[o]
        assert self.s is not None
        return torch.stack([k // (h * w), (k // w) % h, k % w]) + self.s[o]


def _vision_runs_of(input_ids: Tensor, image_grid_thw: Tensor | None, image_token_id: int,
                    crop_token_id: int | None, real: Tensor, seg_start: Tensor, kinds: _Kinds,
                    merge: int) -> _Runs:
    """The vision runs (:func:`vision_runs`) matched to the grid rows, checked.

    Raises:
        ValueError: runs and grid rows differ in number, or a run's token count is not its grid's.
    """
    dev = input_ids.device
    starts, run_crop = vision_runs(input_ids, image_token_id, crop_token_id, real, seg_start)  # (N_runs,)
    n_run = starts.numel()
    n_grid = 0 if image_grid_thw is None else image_grid_thw.shape[0]
    if n_run != n_grid:
        kinds_note = f" ({int(run_crop.sum())} of them crops)" if bool(run_crop.any()) else ""
        raise ValueError(f"input_ids hold {n_run} image runs{kinds_note} but image_grid_thw has {n_grid} rows")
    grid = image_grid_thw.to(dev).long() if image_grid_thw is not None and n_run else \
        torch.zeros(0, 3, dtype=torch.long, device=dev)
    gt, gh, gw = grid[:, 0], grid[:, 1] // merge, grid[:, 2] // merge
    vis_idx = (kinds.image | kinds.crop).reshape(-1).nonzero().view(-1)  # (N_tok,)
    o = torch.searchsorted(starts, vis_idx, right=True) - 1  # run ordinal of each vision token
    counts = torch.bincount(o, minlength=n_run)
    if not torch.equal(counts, gt * gh * gw):
        bad = int((counts != gt * gh * gw).nonzero()[0, 0])
        what = "crop" if bool(run_crop[bad]) else "image"
        tok = "<|crop_pad|>" if what == "crop" else "<|image_pad|>"
        raise ValueError(f"{what} {bad} has {int(counts[bad])} {tok} tokens but its grid "
                         f"{grid[bad].tolist()} needs {int((gt * gh * gw)[bad])}")
    return _Runs(starts, run_crop, gt, gh, gw, vis_idx, o)


def _text_ids(is_text: Tensor, runs: _Runs, seg_first: Tensor, segmented: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``cur`` before each token (B, L), counted from its segment's start, with the running sum
    ``cum`` and its exclusive form ``excl`` counted from the row start (both (B, L)). A text token
    moves cur by 1, an image by max(T, H', W') (on its first token), a crop by nothing."""
    adv = is_text.long()  # (B, L) how far each token moves cur
    span = torch.where(runs.is_crop, 0, torch.maximum(runs.t, torch.maximum(runs.h, runs.w)))
    adv.view(-1).index_add_(0, runs.starts, span)
    cum = torch.cumsum(adv, dim=1)
    excl = cum - adv
    cur = excl - excl.gather(1, seg_first) if segmented else excl
    return cum, excl, cur


def _frame_of(runs: _Runs, idx: Tensor, L: int, seg_first: Tensor, what: str) -> Tensor:
    """Grid row of the image each flat index ``idx`` follows (same row and segment).

    Raises:
        ValueError: a token has no image before it in its row/segment.
    """
    img_runs = runs.image_runs
    img_starts = runs.starts[img_runs]
    has = img_starts.numel() > 0
    q = torch.searchsorted(img_starts, idx, right=True) - 1 if has else torch.full_like(idx, -1)
    first = (idx // L) * L + seg_first.reshape(-1)[idx]
    if not has or bool(((q < 0) | (img_starts[q.clamp(min=0)] < first)).any()):
        raise ValueError(f"a {what} token has no image before it in its row/segment; "
                         f"it must follow its image (...<|vision_end|><|point|>)")
    return img_runs[q]


def _in_frame(runs: _Runs, g: Tensor, xy: Tensor) -> Tensor:
    """(3, N) ids of normalised (x, y) (N, 2) in the frames of images ``g`` (N,): the point rule."""
    assert runs.s is not None
    s = runs.s[g].float()
    hh, ww = runs.h[g].float(), runs.w[g].float()
    ph = s + torch.minimum(torch.clamp(xy[:, 1] * hh - 0.5, min=0.0), hh - 1)
    pw = s + torch.minimum(torch.clamp(xy[:, 0] * ww - 0.5, min=0.0), ww - 1)
    return torch.stack([s, ph, pw])


def _crop_ids(runs: _Runs, crop_boxes: Tensor, L: int, seg_first: Tensor) -> Tensor:
    """(3, N_ct) ids of the crop tokens: the point rule at each crop cell's centre inside its box.

    Raises:
        ValueError: a crop has no image before it in its row/segment.
    """
    crop_ord = torch.cumsum(runs.is_crop.long(), 0) - 1  # (N_runs,) crop ordinal (meaningful at crop runs)
    g = _frame_of(runs, runs.starts[runs.is_crop], L, seg_first, "<|crop_pad|>")  # (N_crop,) each crop's image
    ct = ~runs.image_token
    o = runs.run[ct]
    oc = crop_ord[o]  # (N_ct,) crop of each crop token
    kk, gh, gw = runs.offset[ct], runs.h[o], runs.w[o]
    b = crop_boxes.to(runs.tokens.device, torch.float32)[oc]  # (N_ct, 4)
    x = b[:, 0] + ((kk % gw).float() + 0.5) / gw.float() * (b[:, 2] - b[:, 0])
    y = b[:, 1] + (((kk // gw) % gh).float() + 0.5) / gh.float() * (b[:, 3] - b[:, 1])
    return _in_frame(runs, g[oc], torch.stack([x, y], dim=1))


def _rope_deltas(cum: Tensor, excl: Tensor, real: Tensor, seg_first: Tensor, segmented: bool) -> Tensor:
    """(B, 1) (largest id + 1) - (real tokens), over each row's last segment (the one holding its
    last real token)."""
    if not segmented:
        return cum[:, -1:] - real.sum(dim=1, keepdim=True)
    ar = torch.arange(real.shape[1], device=real.device).expand(real.shape)
    last = torch.where(real, ar, 0).amax(dim=1, keepdim=True)  # (B, 1)
    cur_end = cum.gather(1, last) - excl.gather(1, seg_first.gather(1, last))
    in_last = real & (seg_first == seg_first.gather(1, last))
    return cur_end - in_last.sum(dim=1, keepdim=True)
