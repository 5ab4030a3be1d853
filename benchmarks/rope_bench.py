"""M-RoPE position ids: ours (vectorised) against transformers' ``get_rope_index``, same run.

Batch 32 x 1,024 tokens, one image per row with ``image_grid_thw`` (1, 16, 16) (an 8 x 8
merged grid, 64 tokens; ``--grid 32`` gives 16 x 16 merged tokens), random text around it,
an attention mask of ones. Prints the median time per call of each, the ratio (goal >= 10x)
and whether the ids are identical on every real token.

    python benchmarks/rope_bench.py [--batch 32] [--length 1024] [--grid 16] [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from owl_train.model.rope import get_rope_index

IMG, VID, VS, VE = 300, 301, 302, 303


def make_batch(batch: int, length: int, grid: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n_img = (grid // 2) ** 2
    ids = torch.randint(0, 290, (batch, length), generator=g)
    for b in range(batch):
        s = int(torch.randint(0, length - n_img - 2, (1,), generator=g))
        ids[b, s] = VS
        ids[b, s + 1:s + 1 + n_img] = IMG
        ids[b, s + 1 + n_img] = VE
    grids = torch.tensor([[1, grid, grid]] * batch)
    return ids, torch.ones_like(ids), grids


def timeit(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--grid", type=int, default=16, help="image_grid_thw h = w, in ViT patches")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    from transformers import Qwen2VLConfig, Qwen2VLModel

    ref = Qwen2VLModel(Qwen2VLConfig(
        vision_config=dict(depth=1, embed_dim=32, num_heads=2, hidden_size=64),
        text_config=dict(vocab_size=320, hidden_size=64, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2,
                         rope_parameters=dict(rope_type="default", mrope_section=[2, 3, 3], rope_theta=1e4)),
        image_token_id=IMG, video_token_id=VID, vision_start_token_id=VS, vision_end_token_id=VE)).eval()
    ids, mask, grids = make_batch(a.batch, a.length, a.grid)
    tt = (ids == IMG).int()
    ours = lambda: get_rope_index(ids, grids, mask, image_token_id=IMG)
    theirs = lambda: ref.get_rope_index(ids, tt, grids, None, mask)
    (p, d), (rp, rd) = ours(), theirs()
    same = torch.equal(p, rp) and torch.equal(d, rd.view(-1, 1))
    t_ours, t_ref = timeit(ours, a.repeats), timeit(theirs, a.repeats)
    print(f"batch {a.batch} x {a.length} tokens, image_grid_thw (1, {a.grid}, {a.grid}), "
          f"torch threads {torch.get_num_threads()}")
    print(f"ours          {t_ours * 1e3:8.3f} ms/call")
    print(f"transformers  {t_ref * 1e3:8.3f} ms/call")
    print(f"speed-up      {t_ref / t_ours:8.1f}x   (goal >= 10x)   identical: {same}")


if __name__ == "__main__":
    main()
