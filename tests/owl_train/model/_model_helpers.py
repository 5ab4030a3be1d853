"""Shared builders for the model tests: tiny configs, random multimodal batches, the reference."""

from __future__ import annotations

import torch

VOCAB = 320
IMG, VID, VS, VE, PT = 300, 301, 302, 303, 304
MERGE = 2


def tiny_hf_config(tie: bool = False, vocab: int = VOCAB):
    from transformers import Qwen2VLConfig

    return Qwen2VLConfig(
        vision_config=dict(depth=2, embed_dim=32, num_heads=2, hidden_size=64),
        text_config=dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6,
                         bos_token_id=None, eos_token_id=None,
                         rope_parameters=dict(rope_type="default", mrope_section=[2, 3, 3], rope_theta=10000.0)),
        image_token_id=IMG, video_token_id=VID, vision_start_token_id=VS, vision_end_token_id=VE,
        tie_word_embeddings=tie,
    )


def random_batch(g: torch.Generator, batch: int, max_images: int = 3, min_images: int = 1,
                 max_side: int = 8, left_pad: bool | None = None, points: bool = False, max_text: int = 12):
    """Rows of text / <vs> <image_pad>* <ve> [<point>] / text; returns ids, mask, grids, points."""
    rows, grids, pts = [], [], []
    for _ in range(batch):
        row: list[int] = []
        n_img = int(torch.randint(min_images, max_images + 1, (1,), generator=g))
        for _ in range(n_img):
            row += torch.randint(0, 290, (int(torch.randint(0, max_text, (1,), generator=g)),), generator=g).tolist()
            h, w = (int(v) * MERGE for v in torch.randint(1, max_side + 1, (2,), generator=g))
            grids.append([1, h, w])
            row += [VS] + [IMG] * (h * w // MERGE ** 2) + [VE]
            if points:
                row.append(PT)
                pts.append(torch.rand(2, generator=g).tolist())
        row += torch.randint(0, 290, (int(torch.randint(1, max_text, (1,), generator=g)),), generator=g).tolist()
        rows.append(row)
    L = max(map(len, rows))
    if left_pad is None:
        left_pad = bool(torch.randint(0, 2, (1,), generator=g))
    ids = torch.zeros(batch, L, dtype=torch.long)
    mask = torch.zeros(batch, L, dtype=torch.long)
    for i, r in enumerate(rows):
        sl = slice(L - len(r), L) if left_pad else slice(0, len(r))
        ids[i, sl] = torch.tensor(r)
        mask[i, sl] = 1
    grid = torch.tensor(grids, dtype=torch.long).view(-1, 3)
    pt = torch.tensor(pts, dtype=torch.float32).view(-1, 2) if points else None
    return ids, mask, grid, pt


def pixel_values_for(grid: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = int(grid.prod(-1).sum())
    return torch.randn(n, 3 * 2 * 14 * 14, generator=g)


def mm_token_type_ids(ids: torch.Tensor) -> torch.Tensor:
    return (ids == IMG).int()


def our_config(point: bool = True, tie: bool = False):
    """Our config for the same tiny shapes, with the point token."""
    from owl_train.model.config import OwlVLConfig

    cfg = OwlVLConfig.from_hf_dict(tiny_hf_config(tie=tie).to_dict())
    if point:
        import dataclasses

        cfg = dataclasses.replace(cfg, point_token_id=PT)
    return cfg


def reference_rope_model():
    from transformers import Qwen2VLModel

    return Qwen2VLModel(tiny_hf_config()).eval()
