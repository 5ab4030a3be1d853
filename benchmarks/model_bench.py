"""Forward + backward throughput and peak memory: ours against transformers' Qwen2-VL, same weights.

One small config (vision depth 4 / width 128; text width 256, 4 layers, 8 heads, 2 KV heads),
batch 4 x 512 tokens with one (1, 16, 16) image per row. Each implementation runs in its own
subprocess (so peak memory is its own): CUDA peak allocated when on a GPU, else the rise of
the process's peak RSS over the loaded-model baseline. Prints tokens/s, peak memory, ratios.

    python benchmarks/model_bench.py [--steps 5] [--device cpu|cuda] [--dtype float32|bfloat16]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

import torch

IMG, VID, VS, VE = 2000, 2001, 2002, 2003


def hf_config():
    from transformers import Qwen2VLConfig

    return Qwen2VLConfig(
        vision_config=dict(depth=4, embed_dim=128, num_heads=4, hidden_size=256),
        text_config=dict(vocab_size=2048, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=2, bos_token_id=None, eos_token_id=None,
                         rope_parameters=dict(rope_type="default", mrope_section=[4, 6, 6], rope_theta=1e6)),
        image_token_id=IMG, video_token_id=VID, vision_start_token_id=VS, vision_end_token_id=VE)


def batch(b: int, length: int, grid: int, device: str):
    g = torch.Generator().manual_seed(0)
    n = (grid // 2) ** 2
    ids = torch.randint(0, 1990, (b, length), generator=g)
    ids[:, 5] = VS
    ids[:, 6:6 + n] = IMG
    ids[:, 6 + n] = VE
    grids = torch.tensor([[1, grid, grid]] * b)
    pv = torch.randn(b * grid * grid, 1176, generator=g)
    return ids.to(device), torch.ones_like(ids).to(device), pv.to(device), grids.to(device)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(impl: str, path: str, steps: int, device: str, dtype: str) -> dict:
    dt = getattr(torch, dtype)
    import transformers  # noqa: F401  (both workers import it, so their baseline memory is alike)

    if impl == "ours":
        from owl_train.model.checkpoint import load_pretrained

        model = load_pretrained(path, dtype=dt, device=device)
    else:
        from transformers import Qwen2VLForConditionalGeneration

        model = Qwen2VLForConditionalGeneration.from_pretrained(path, dtype=dt, attn_implementation="sdpa").to(device)
    model.train()
    ids, mask, pv, grids = batch(4, 512, 16, device)
    pv = pv.to(dt)

    def step():
        if impl == "ours":
            logits = model(ids, attention_mask=mask, pixel_values=pv, image_grid_thw=grids).logits
        else:
            logits = model(input_ids=ids, attention_mask=mask, pixel_values=pv, image_grid_thw=grids,
                           mm_token_type_ids=(ids == IMG).int()).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())
        loss.backward()
        model.zero_grad(set_to_none=True)
        return float(loss)

    loss = step()  # warm-up
    base = rss_mb()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    dt_s = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else rss_mb()
    return {"impl": impl, "tokens_per_s": steps * ids.numel() / dt_s, "peak_mb": peak,
            "rss_before_timed_mb": base, "loss": loss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs of each; the best is kept")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--worker", nargs=2, metavar=("IMPL", "PATH"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.worker:
        print(json.dumps(worker(a.worker[0], a.worker[1], a.steps, a.device, a.dtype)))
        return
    from transformers import Qwen2VLForConditionalGeneration

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        Qwen2VLForConditionalGeneration(hf_config()).save_pretrained(tmp)
        res: dict[str, dict] = {}
        for _ in range(a.rounds):  # alternate, so load from other processes hits both alike
            for impl in ("ours", "transformers"):
                out = subprocess.run([sys.executable, __file__, "--worker", impl, tmp, "--steps", str(a.steps),
                                      "--device", a.device, "--dtype", a.dtype, "--threads", str(a.threads)],
                                     capture_output=True, text=True, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                if impl not in res or r["tokens_per_s"] > res[impl]["tokens_per_s"]:
                    res[impl] = r
    o, r = res["ours"], res["transformers"]
    mem = "CUDA peak allocated" if a.device == "cuda" else "process peak RSS"
    print(f"batch 4 x 512 tokens, one (1, 16, 16) image per row, {a.device} {a.dtype}, {a.steps} timed steps, best of {a.rounds} alternating runs, "
          f"torch threads {torch.get_num_threads()}")
    for x in (o, r):
        print(f"{x['impl']:13s} {x['tokens_per_s']:9.0f} tokens/s   {mem} {x['peak_mb']:8.1f} MB   "
              f"(first-step loss {x['loss']:.5f})")
    print(f"speed ours / transformers: {o['tokens_per_s'] / r['tokens_per_s']:.2f}x (goal >= 1)   "
          f"memory ours / transformers: {o['peak_mb'] / r['peak_mb']:.2f}")


if __name__ == "__main__":
    main()
