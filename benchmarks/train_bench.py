"""Training benchmark.

Part 1 (data path): padding fraction of stage-1 batches with and without packing, on the same
mix, in the same run. Builds the embedded default corpus (all four tasks) with ``owl_data``,
draws a 5:1:2:2 mix, writes a tiny tokenizer with ``owl_train.model.tiny.init_tiny``, then
collates the same rows in batches of ``--batch-rows`` twice: padded to the longest row, and
packed (first-fit into sequences of ``--max-length``). Padding fraction = padding tokens /
(B x L) over all batches. Goal: packing leaves under 5% of tokens as padding. Part 2 (stages):
stage-1 samples/s of the tiny model on CPU, padded and packed.

    python benchmarks/train_bench.py [--samples 512] [--batch-rows 32] [--max-length 1024] [--out DIR]

Part 3 (``--gpu``): a Qwen2-VL-2B-shaped random model (text 1536 wide, 28 layers, 12 heads,
2 KV heads, MLP 8960, vocab 151936, tied LM head, M-RoPE (16, 24, 24), theta 1e6; ViT depth
32, width 1280, 16 heads, merger to 1536; ``OwlVL(config).reset_parameters()``, plus the
``<|point|>`` token at id 151665) on one CUDA device, on a synthetic packed batch: ``--rows``
rows of ``--max-length`` tokens (default 4096), each holding several segments (``segment_ids``)
of text, one image (``<|vision_start|><|image_pad|>*n<|vision_end|>``, random pixels, grids of
16..32 patches a side) and one ``<|point|>``; the tail of each row (1/64) is padding.

    python benchmarks/train_bench.py --gpu [--rows 2] [--max-length 4096] [--steps 10] [--warmup 3]
        [--precision bf16|autocast] [--peak-flops 989e12] [--json FILE]
    python benchmarks/train_bench.py --dry-run-cpu [--json FILE]   # same code, tiny shape, CPU, SDPA only

It measures, and prints as one table (``--json FILE`` writes the same figures):

1. Logit agreement, flash-attn varlen against SDPA: the model in bf16 (eval, no grad) runs the
   same batch twice, once with ``owl_train.model.attention._flash_varlen`` (ViT and decoder
   take the varlen kernel) and once with it set to None (every attention is SDPA with the
   block-diagonal causal mask). Over the real tokens: max |logit_flash - logit_sdpa|, mean
   KL(softmax_sdpa || softmax_flash) (float32), top-1 agreement; the logits' std for scale.
2. Packed stage-1 tokens/s, per backend: forward + LM loss (``owl_train.stages.module.TrainModule``)
   + backward + grad-norm clip + AdamW step, trainable parameters as stage 1's default recipe
   (``set_stage1_trainable``: decoder, LM head, merger and point encoder; ViT frozen).
   ``--warmup`` steps are left out; ``torch.cuda.synchronize()`` before the clock starts and
   before it stops; tokens/s = real (non-padding) tokens x steps / seconds; peak memory =
   ``torch.cuda.max_memory_allocated`` over the steps (weights and AdamW state included).
   ``--precision bf16`` (default): bf16 weights, gradients and AdamW state (DeepSpeed's bf16
   layout). ``autocast``: fp32 weights under bf16 autocast, the plain trainer's layout; there
   the decoder's input is fp32, so ``flash_usable`` is false and the decoder takes SDPA: the
   table's "flash calls / forward" row shows which attentions really ran the varlen kernel.
3. MFU = model FLOP/s / the GPU's peak dense bf16 FLOP/s. Model FLOPs per token =
   6 * N + 12 * n_layers * d_model * S, where N = the trainable parameters outside the ViT
   (decoder and LM head; the input embedding counts only when tied to the LM head, since a
   lookup is no matmul) and S = the token-weighted mean segment length sum(s^2) / sum(s)
   (a packed token attends only within its segment; S is the row length for an unpacked row),
   the PaLM convention (causal attention counted in full). "MFU incl. ViT" adds the frozen ViT's
   forward, per patch 2 * N_vit + 4 * depth * width * F (F likewise over frames), and the
   merger's 6 * N_merger per merged token. Peak: H100/H200 SXM 989e12, H100/H200 NVL 835e12,
   H100 PCIe 756e12, A100 312e12, L40S 362e12, chosen from the device name; ``--peak-flops``
   overrides; an unknown device (or the CPU) prints MFU as unknown.

``--gpu`` exits with status 2 and one line on stderr when CUDA or flash-attn is unavailable.
``--dry-run-cpu`` runs the same functions on the CPU with a tiny shape (text 64 wide, 2
layers; ViT depth 2), 256-token rows, and SDPA in both columns (so the agreement is exactly 0).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_inputs(root: Path, samples: int, seed: int = 0) -> tuple[Path, Path, Path]:
    """Corpus, mix and tiny model/tokenizer folders under ``root`` (reused when present)."""
    from owl_data.build.driver import SourceSpec, run_build
    from owl_data.build.config import BuildConfig
    from owl_data.mix.io import MixConfig, write_mix
    from owl_data.sources.synthetic.scenes import write_default_sources
    from owl_train.model.tiny import init_tiny

    corpus, mix, model = root / "corpus", root / f"mix-{samples}", root / "tiny"
    if not (corpus / "manifest.json").exists():
        sources = [SourceSpec(n, s, synthetic=True) for n, s in write_default_sources(root / "src", seed=seed)]
        run_build(sources, corpus, BuildConfig(seed=seed))
    if not (mix / "mix.json").exists():
        write_mix(corpus, mix, MixConfig(ratio=tuple(map(Fraction, (5, 1, 2, 2))), num_samples=samples, seed=seed))
    if not (model / "tokenizer.json").exists():
        init_tiny(model)
    return corpus, mix, model


def padding_stats(rows: list[dict], tokenizer, cfg, batch_rows: int) -> dict:
    """Encode ``rows`` (timed: rendering, tokenising, image preprocessing), then collate them in
    batches of ``batch_rows``; token counts."""
    from owl_train.data import Collator

    c = Collator(tokenizer, cfg)
    n = real = slots = sequences = 0
    secs = 0.0
    for a in range(0, len(rows), batch_rows):  # encode per batch: encoded pixel values are ~3 MB a row
        t0 = time.perf_counter()
        encoded = [e for e in (c.encode(r) for r in rows[a:a + batch_rows]) if e is not None]
        secs += time.perf_counter() - t0
        b = c(encoded)
        n += len(encoded)
        real += int(b["attention_mask"].sum())
        slots += b["input_ids"].numel()
        sequences += b["input_ids"].shape[0]
    return {"rows": n, "dropped": dict(c.dropped), "sequences": sequences, "real_tokens": real,
            "token_slots": slots, "padding_fraction": 1 - real / max(slots, 1), "encode_rows_per_s": n / secs}


def stage1_throughput(root: Path, corpus: Path, mix: Path, model: Path, *, pack: bool, steps: int,
                      batch_rows: int, max_length: int) -> dict:
    """Part 2 (stages): ``steps`` stage-1 optimizer steps of the tiny model on the same mix, timed
    (rows, collation, forward, backward, AdamW); samples/s and real tokens/s from the run's log."""
    import json

    from owl_train.stages.config import TrainConfig
    from owl_train.stages import run_stage1

    out = root / f"stage1-{'packed' if pack else 'padded'}-{time.time_ns()}"
    cfg = TrainConfig(model=str(model), corpus=str(corpus), mix=str(mix), out=str(out), batch_size=batch_rows,
                      max_steps=steps, max_length=max_length, pack=pack, pad_to_multiple_of=8, lr=1e-3,
                      progress=False, tensorboard=False)
    t0 = time.perf_counter()
    res = run_stage1(cfg)
    secs = time.perf_counter() - t0
    rows = sum(len(ids) for ids in res.ids)
    last = [json.loads(ln) for ln in (out / "logs" / "metrics.jsonl").read_text().splitlines() if ln][-1]
    return {"steps": res.steps, "rows": rows, "samples_per_s": res.samples_per_s, "wall_s": secs,
            "loop_samples_per_s": last["samples_per_s"]}


# -- Part 3 (--gpu / --dry-run-cpu): flash-attn vs SDPA, packed stage-1 tokens/s, MFU ----------

PEAK_BF16_FLOPS = (  # dense bf16 tensor-core peaks, matched in order against the device name
    ("h200 nvl", 835e12), ("h100 nvl", 835e12), ("h100 pcie", 756e12), ("h200", 989e12), ("h100", 989e12),
    ("a100", 312e12), ("l40s", 362e12),
)
POINT_TOKEN_2B = 151665  # the first free slot after Qwen2's special tokens (vocab 151936)


def bench_config(shape: str):
    """``qwen2-vl-2b`` (Qwen2-VL-2B's config.json) or ``tiny`` (the CPU dry run)."""
    from owl_train.model.config import OwlVLConfig, TextConfig, VisionConfig

    if shape == "qwen2-vl-2b":
        return OwlVLConfig(
            vision=VisionConfig(depth=32, embed_dim=1280, num_heads=16, mlp_ratio=4.0, patch_size=14,
                                spatial_merge_size=2, out_dim=1536),
            text=TextConfig(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                            num_attention_heads=12, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1e6,
                            mrope_section=(16, 24, 24)),
            image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653,
            point_token_id=POINT_TOKEN_2B, tie_word_embeddings=True, dtype="bfloat16")
    if shape == "tiny":
        return OwlVLConfig(
            vision=VisionConfig(depth=2, embed_dim=32, num_heads=2, mlp_ratio=4.0, out_dim=64),
            text=TextConfig(vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, rope_theta=1e4, mrope_section=(2, 3, 3)),
            image_token_id=1000, video_token_id=1001, vision_start_token_id=1002, vision_end_token_id=1003,
            point_token_id=1004, tie_word_embeddings=True)
    raise ValueError(f"unknown shape {shape!r}: use qwen2-vl-2b or tiny")


def packed_batch(cfg, rows: int, max_length: int, sides: tuple[int, ...], seed: int = 0) -> dict:
    """A synthetic packed stage-1 batch in the collator's layout (CPU tensors).

    Each row: segments of ``max_length/8 .. max_length/3`` tokens (the last one fills the row up
    to ``max_length - max_length // 64``, the rest is padding), each ``text <vs> <image_pad>*n
    <ve> <point> text`` with an image of (1, h, w) patches, h and w drawn from ``sides``;
    ``segment_ids`` -1 and ``attention_mask`` 0 on padding; labels on the text after the point.
    """
    import torch

    from owl_train.model.rope import get_rope_index

    g = torch.Generator().manual_seed(seed)
    m = cfg.vision.spatial_merge_size
    text_max = min(cfg.image_token_id, cfg.vision_start_token_id, cfg.vision_end_token_id, cfg.video_token_id,
                   cfg.point_token_id if cfg.point_token_id is not None else cfg.text.vocab_size)
    rint = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=g))  # noqa: E731
    ids = torch.zeros(rows, max_length, dtype=torch.long)
    labels = torch.full((rows, max_length), -100, dtype=torch.long)
    seg = torch.full((rows, max_length), -1, dtype=torch.long)
    grids, points, seg_lens = [], [], []
    lo, hi = max_length // 8, max_length // 3
    for r in range(rows):
        usable, at, k = max_length - max_length // 64, 0, 0
        while at < usable:
            n = min(rint(lo, hi), usable - at)
            if usable - at - n < lo:
                n = usable - at  # the last segment takes the rest of the row
            h, w = sides[rint(0, len(sides) - 1)], sides[rint(0, len(sides) - 1)]
            n_img = h * w // m ** 2
            while n_img + 8 > n and h * w > m * m:  # the image must leave room for text
                h, w = max(m, h - m), max(m, w - m)
                n_img = h * w // m ** 2
            if n_img + 8 > n:
                break  # a too-short tail stays padding
            pre = rint(1, max(1, (n - n_img - 3) // 4))
            post = n - n_img - 3 - pre
            row = (torch.randint(0, text_max, (pre,), generator=g).tolist() + [cfg.vision_start_token_id]
                   + [cfg.image_token_id] * n_img + [cfg.vision_end_token_id, cfg.point_token_id]
                   + torch.randint(0, text_max, (post,), generator=g).tolist())
            ids[r, at:at + n] = torch.tensor(row)
            labels[r, at + n - post:at + n] = ids[r, at + n - post:at + n]
            seg[r, at:at + n] = k
            grids.append([1, h, w])
            points.append((torch.rand(2, generator=g) * 0.9 + 0.05).tolist())
            seg_lens.append(n)
            at, k = at + n, k + 1
    mask = (seg >= 0).long()
    grid_thw = torch.tensor(grids, dtype=torch.long)
    pts = torch.tensor(points, dtype=torch.float32)
    pixel_values = torch.randn(int(grid_thw.prod(-1).sum()), cfg.vision.patch_dim, generator=g)
    position_ids, _ = get_rope_index(ids, grid_thw, mask, image_token_id=cfg.image_token_id, spatial_merge_size=m,
                                     point_token_id=cfg.point_token_id, points=pts, segment_ids=seg)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "position_ids": position_ids,
            "pixel_values": pixel_values, "image_grid_thw": grid_thw, "points": pts, "segment_ids": seg,
            "segment_lengths": seg_lens}


def _to_device(batch: dict, device, float_dtype=None) -> dict:
    import torch

    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device)
            if float_dtype is not None and k == "pixel_values":
                v = v.to(float_dtype)
        out[k] = v
    return out


class _Backend:
    """Forces the attention backend: ``flash`` (the varlen kernel, every call counted) or ``sdpa``
    (``owl_train.model.attention._flash_varlen`` set to None, so ``flash_usable`` is false)."""

    def __init__(self, name: str) -> None:
        self.name, self.calls = name, 0

    def __enter__(self) -> "_Backend":
        import owl_train.model.attention as attention

        if not hasattr(attention, "_flash_varlen"):
            raise RuntimeError("owl_train.model.attention has no _flash_varlen: the backend switch needs updating")
        self._mod, self._orig = attention, attention._flash_varlen
        if self.name == "sdpa":
            attention._flash_varlen = None
        else:
            if self._orig is None:
                raise RuntimeError("flash-attn is not importable")
            orig = self._orig

            def counted(*a, **kw):
                self.calls += 1
                return orig(*a, **kw)

            attention._flash_varlen = counted
        return self

    def __exit__(self, *exc) -> None:
        self._mod._flash_varlen = self._orig


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def logit_agreement(model, batch: dict, backends: tuple[str, str], chunk: int = 1024) -> dict:
    """Max |logit diff|, mean KL(P_second || P_first) and top-1 agreement over real tokens, the
    same batch through ``model`` (as it is: eval, no grad) with each backend."""
    import torch

    model.eval()
    logits, calls = [], []
    with torch.no_grad():
        for name in backends:
            with _Backend(name) as be:
                out = model(batch["input_ids"], attention_mask=batch["attention_mask"],
                            pixel_values=batch["pixel_values"], image_grid_thw=batch["image_grid_thw"],
                            points=batch["points"], segment_ids=batch["segment_ids"],
                            position_ids=batch["position_ids"])
            logits.append(out.logits[batch["attention_mask"].bool()])  # (N_real, V)
            calls.append(be.calls)
            del out
        a, b = logits
        max_abs, kl, top1, sq, n = 0.0, 0.0, 0, 0.0, a.shape[0]
        for i in range(0, n, chunk):
            x, y = a[i:i + chunk].float(), b[i:i + chunk].float()
            max_abs = max(max_abs, float((x - y).abs().max()))
            lq, lp = x.log_softmax(-1), y.log_softmax(-1)  # P = the second backend's (the reference)
            kl += float((lp.exp() * (lp - lq)).sum())
            top1 += int((x.argmax(-1) == y.argmax(-1)).sum())
            sq += float(y.pow(2).mean(-1).sum())
    model.train()
    return {"backends": list(backends), "tokens": n, "max_abs_logit_diff": max_abs, "mean_kl": kl / max(n, 1),
            "top1_agreement": top1 / max(n, 1), "logit_rms": (sq / max(n, 1)) ** 0.5,
            "flash_calls_per_forward": calls}


def train_throughput(model, batch: dict, *, backend: str, steps: int, warmup: int, precision: str, device) -> dict:
    """Stage-1 optimizer steps on ``batch`` with one attention backend; timed after ``warmup``."""
    import torch

    from owl_train.stages.module import TrainModule

    module = TrainModule(model).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-6)
    keys = ("input_ids", "attention_mask", "labels", "position_ids", "pixel_values", "image_grid_thw", "points",
            "segment_ids")
    tensors = {k: batch[k] for k in keys}
    cuda = device.type == "cuda"
    losses = []
    with _Backend(backend) as be:
        _sync(device)
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        for i in range(warmup + steps):
            if i == warmup:
                _sync(device)
                t0, calls0 = time.perf_counter(), be.calls
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "autocast"):
                loss = module(**tensors)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.detach())
        _sync(device)
        secs = time.perf_counter() - t0
        calls = be.calls - calls0
    peak = torch.cuda.max_memory_allocated(device) if cuda else None
    del opt
    if cuda:
        torch.cuda.empty_cache()
    real = int(batch["attention_mask"].sum())
    return {"backend": backend, "steps": steps, "warmup": warmup, "seconds": secs, "step_s": secs / steps,
            "tokens_per_step": real, "tokens_per_s": real * steps / secs, "peak_memory_bytes": peak,
            "final_loss": float(losses[-1]), "flash_calls_per_forward": calls / steps}


def model_flops(model, batch: dict) -> dict:
    """Model FLOPs per step as the module docstring states (text 6N + attention; ViT forward)."""
    import torch

    cfg = model.config
    tied = cfg.tie_word_embeddings
    n_text = n_vit = n_merger = 0
    for name, p in model.named_parameters():
        if name.startswith("visual.merger."):
            n_merger += p.numel() if p.requires_grad else 0
        elif name.startswith("visual."):
            n_vit += p.numel()
        elif p.requires_grad and (tied or not name.startswith("decoder.embed_tokens.")):
            n_text += p.numel()
    seg = torch.tensor(batch["segment_lengths"], dtype=torch.float64)
    s_eff = float((seg ** 2).sum() / seg.sum())
    frames = batch["image_grid_thw"][:, 1:].prod(-1).double()
    f_eff = float((frames ** 2).sum() / frames.sum())
    tokens = int(batch["attention_mask"].sum())
    patches = int(batch["image_grid_thw"].prod(-1).sum())
    t, v = cfg.text, cfg.vision
    per_token = 6 * n_text + 12 * t.num_hidden_layers * t.hidden_size * s_eff
    vit_fwd = 2 * n_vit + 4 * v.depth * v.embed_dim * f_eff  # frozen in stage 1: forward only
    vit_step = patches * vit_fwd + patches // v.spatial_merge_size ** 2 * 6 * n_merger
    return {"n_text_trainable": n_text, "n_vit": n_vit, "n_merger_trainable": n_merger,
            "attention_seq_len": s_eff, "vit_frame_len": f_eff, "flops_per_token": per_token,
            "text_flops_per_step": per_token * tokens, "vit_flops_per_step": vit_step, "patches_per_step": patches}


def peak_flops(device, override: float | None) -> tuple[float | None, str]:
    import torch

    if override:
        return override, "--peak-flops"
    if device.type != "cuda":
        return None, "unknown (CPU; pass --peak-flops)"
    name = torch.cuda.get_device_name(device).lower()
    for key, value in PEAK_BF16_FLOPS:
        if key in name:
            return value, f"table ({key})"
    return None, f"unknown GPU {name!r} (pass --peak-flops)"


def gpu_unavailable() -> str | None:
    """Why ``--gpu`` cannot run here (one line), or None."""
    import torch

    if not torch.cuda.is_available():
        return "train_bench.py --gpu: CUDA is not available (torch.cuda.is_available() is False); run it on a GPU " \
               "machine, or use --dry-run-cpu to check the code path"
    import owl_train.model.attention as attention

    if getattr(attention, "_flash_varlen", None) is None:
        try:
            import flash_attn  # noqa: F401
            why = "flash_attn imports but flash_attn_varlen_func does not"
        except Exception as exc:  # ImportError, or a CUDA/ABI mismatch raised at import
            why = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return f"train_bench.py --gpu: flash-attn is not usable ({why}); pip install flash-attn --no-build-isolation"
    return None


def cast_keep_buffers(model, dtype):
    """``model.to(dtype)`` for parameters only: float buffers (the rotary ``inv_freq``) stay
    float32, as transformers' ``from_pretrained(torch_dtype=...)`` keeps them."""
    bufs = {n: b.clone() for n, b in model.named_buffers() if b.is_floating_point()}
    model.to(dtype)
    for name, b in bufs.items():
        mod, _, leaf = name.rpartition(".")
        model.get_submodule(mod)._buffers[leaf] = b
    return model


def run_gpu_bench(*, dry_run: bool, rows: int, max_length: int | None, steps: int, warmup: int, precision: str,
                  peak_override: float | None, seed: int = 0, backends: tuple[str, str] | None = None) -> dict:
    """The ``--gpu`` benchmark's three measurements; returns the figures the table and ``--json`` show.

    ``backends``: the two columns (default flash then sdpa on CUDA, sdpa twice in the dry run)."""
    import torch

    from owl_train.stages.config import TrainConfig
    from owl_train.model.model import OwlVL
    from owl_train.stages.stage1 import set_stage1_trainable

    shape = "tiny" if dry_run else "qwen2-vl-2b"
    device = torch.device("cpu" if dry_run else "cuda")
    max_length = max_length or (256 if dry_run else 4096)
    cfg = bench_config(shape)
    sides = (2, 4, 6) if dry_run else (16, 20, 24, 28, 32)
    t0 = time.perf_counter()
    with torch.device(device):
        model = OwlVL(cfg)
    model.reset_parameters(seed)
    set_stage1_trainable(model, TrainConfig())
    cast_keep_buffers(model, torch.bfloat16)
    built_s = time.perf_counter() - t0
    cpu_batch = packed_batch(cfg, rows, max_length, sides, seed)
    batch = _to_device(cpu_batch, device, torch.bfloat16)
    backends = backends or (("sdpa", "sdpa") if dry_run else ("flash", "sdpa"))
    agreement = logit_agreement(model, batch, backends)
    if precision == "autocast":
        cast_keep_buffers(model, torch.float32)
        batch = _to_device(cpu_batch, device)
    flops = model_flops(model, cpu_batch)
    peak, peak_source = peak_flops(device, peak_override)
    runs = {}
    for i, name in enumerate(backends):
        r = train_throughput(model, batch, backend=name, steps=steps, warmup=warmup, precision=precision,
                             device=device)
        achieved = (flops["text_flops_per_step"]) / r["step_s"]
        achieved_vit = (flops["text_flops_per_step"] + flops["vit_flops_per_step"]) / r["step_s"]
        r.update(model_flops_per_s=achieved, model_flops_per_s_incl_vit=achieved_vit,
                 mfu=achieved / peak if peak else None, mfu_incl_vit=achieved_vit / peak if peak else None)
        runs[f"{name}-{i}" if backends[0] == backends[1] else name] = r
    real = int(cpu_batch["attention_mask"].sum())
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "mode": "dry-run-cpu" if dry_run else "gpu", "shape": shape,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": precision, "torch": torch.__version__, "model_build_s": built_s,
        "params": {"total": n_params, "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)},
        "batch": {"rows": rows, "max_length": max_length, "real_tokens": real,
                  "segments": len(cpu_batch["segment_lengths"]), "images": int(cpu_batch["image_grid_thw"].shape[0]),
                  "patches": flops["patches_per_step"], "padding_fraction": 1 - real / (rows * max_length)},
        "agreement": agreement,
        "flops": {**flops, "peak_flops": peak, "peak_source": peak_source,
                  "formula": "6 * n_text_trainable + 12 * n_layers * d_model * attention_seq_len"},
        "throughput": runs, "expected_flash_calls_per_forward": cfg.vision.depth + cfg.text.num_hidden_layers,
    }


def _count(n: float) -> str:
    return f"{n / 1e9:.3f} B" if n >= 1e8 else f"{n / 1e6:.3f} M"


def print_gpu_table(res: dict) -> None:
    b, a, f = res["batch"], res["agreement"], res["flops"]
    pct = lambda v: "unknown" if v is None else f"{v:.1%}"  # noqa: E731
    print(f"{res['shape']} random model ({_count(res['params']['total'])} params, "
          f"{_count(res['params']['trainable'])} trainable), {res['device']}, {res['precision']}, "
          f"{b['rows']} x {b['max_length']} tokens packed ({b['segments']} segments, {b['images']} images, "
          f"{b['patches']} patches, {b['padding_fraction']:.1%} padding); peak {f['peak_source']}")
    names = list(res["throughput"])
    cols = [res["throughput"][n] for n in names]
    rows = [
        ("tokens/s (real tokens)", [f"{c['tokens_per_s']:,.0f}" for c in cols]),
        ("step seconds", [f"{c['step_s']:.3f}" for c in cols]),
        ("peak memory GiB", ["-" if c["peak_memory_bytes"] is None else f"{c['peak_memory_bytes'] / 2**30:.1f}"
                             for c in cols]),
        ("model TFLOP/s (text)", [f"{c['model_flops_per_s'] / 1e12:.2f}" for c in cols]),
        ("MFU", [pct(c["mfu"]) for c in cols]),
        ("MFU incl. frozen ViT fwd", [pct(c["mfu_incl_vit"]) for c in cols]),
        ("flash calls / forward", [f"{c['flash_calls_per_forward']:.0f} of {res['expected_flash_calls_per_forward']}"
                                   for c in cols]),
        ("final loss", [f"{c['final_loss']:.3f}" for c in cols]),
        (f"logits vs {names[-1]}: max |diff|", [f"{a['max_abs_logit_diff']:.4g}", "(reference)"]),
        ("  mean KL", [f"{a['mean_kl']:.3g}", "(reference)"]),
        ("  top-1 agreement", [f"{a['top1_agreement']:.2%}", "(reference)"]),
    ]
    w = max(len(r[0]) for r in rows) + 2
    print(f"{'figure':{w}}" + "".join(f"{n:>18}" for n in names))
    for label, vals in rows:
        print(f"{label:{w}}" + "".join(f"{v:>18}" for v in vals))
    print(f"logits over {a['tokens']} real tokens, rms {a['logit_rms']:.3f}; model FLOPs/token "
          f"{f['flops_per_token']:.4g} = 6 x {_count(f['n_text_trainable'])} + 12 x layers x d_model x "
          f"S (S = {f['attention_seq_len']:.0f}, token-weighted mean segment length)")
    want = res["expected_flash_calls_per_forward"]
    for name, c in zip(a["backends"], a["flash_calls_per_forward"]):
        if name == "flash" and c != want:
            print(f"warning: the 'flash' forward ran the varlen kernel in {c} of {want} attentions "
                  "(the rest took SDPA), so the agreement compares less than it should")


def gpu_main(args) -> int:
    import json

    if not args.dry_run_cpu:
        why = gpu_unavailable()
        if why:
            print(why, file=sys.stderr)
            return 2
    import torch

    try:
        res = run_gpu_bench(dry_run=args.dry_run_cpu, rows=args.rows, max_length=args.max_length,
                            steps=args.steps, warmup=args.warmup, precision=args.precision,
                            peak_override=args.peak_flops)
    except torch.cuda.OutOfMemoryError:
        print(f"train_bench.py --gpu: out of GPU memory at --rows {args.rows} --max-length "
              f"{args.max_length or 4096}; rerun with fewer rows", file=sys.stderr)
        return 1
    print_gpu_table(res)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--batch-rows", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=None,
                    help="tokens per packed sequence (default 1024; --gpu 4096, --dry-run-cpu 256)")
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--train-steps", type=int, default=8, help="stage-1 steps timed per layout (part 2)")
    g = ap.add_argument_group("part 3 (--gpu, --dry-run-cpu)")
    g.add_argument("--gpu", action="store_true", help="flash-attn vs SDPA, tokens/s and MFU of a Qwen2-VL-2B shape")
    g.add_argument("--dry-run-cpu", action="store_true", help="the --gpu code path on CPU: tiny shape, SDPA only")
    g.add_argument("--rows", type=int, default=2, help="packed rows per step")
    g.add_argument("--steps", type=int, default=10, help="timed optimizer steps per backend")
    g.add_argument("--warmup", type=int, default=3, help="untimed steps first (>= 1: AdamW state allocation)")
    g.add_argument("--precision", choices=("bf16", "autocast"), default="bf16",
                   help="bf16 weights (default) or fp32 weights under bf16 autocast")
    g.add_argument("--peak-flops", type=float, default=None, help="peak dense bf16 FLOP/s (overrides the table)")
    g.add_argument("--json", type=Path, default=None, help="write the part-3 figures here")
    args = ap.parse_args(argv)
    if args.gpu or args.dry_run_cpu:
        if args.rows < 1 or args.steps < 1 or args.warmup < 1:
            ap.error("--rows, --steps and --warmup must be >= 1")
        return gpu_main(args)
    args.max_length = args.max_length or 1024

    from transformers import AutoTokenizer

    from owl_train.data.mix_dataset import MixDataset
    from owl_train.data import DataConfig

    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        t0 = time.perf_counter()
        corpus, mix, model = build_inputs(root, args.samples)
        ds = MixDataset(corpus, mix)
        rows = [ds[i] for i in range(len(ds))]
        tok = AutoTokenizer.from_pretrained(model)
        print(f"inputs: {len(rows)} rows of a 5:1:2:2 mix, built in {time.perf_counter() - t0:.1f} s")
        results = {}
        for name, pack in (("padded", False), ("packed", True)):
            cfg = DataConfig(max_length=args.max_length, pack=pack, pad_to_multiple_of=8)
            results[name] = padding_stats(rows, tok, cfg, args.batch_rows)
        head = f"{'layout':8} {'rows':>6} {'seqs':>6} {'real tok':>10} {'slots':>10} {'padding':>8}"
        print(f"{head} {'encode rows/s':>14}")
        for name, r in results.items():
            print(f"{name:8} {r['rows']:6d} {r['sequences']:6d} {r['real_tokens']:10d} {r['token_slots']:10d} "
                  f"{r['padding_fraction']:8.2%} {r['encode_rows_per_s']:14.0f}")
        goal = results["packed"]["padding_fraction"] < 0.05
        print(f"packing padding fraction {results['packed']['padding_fraction']:.2%} "
              f"({'meets' if goal else 'misses'} the < 5% goal); dropped: {results['packed']['dropped'] or 'none'}")
        # Part 2 (stages): stage-1 samples/s with and without packing on the same mix.
        steps = max(1, min(args.train_steps, len(rows) // args.batch_rows))
        for name, pack in (("padded", False), ("packed", True)):
            r = stage1_throughput(root, corpus, mix, model, pack=pack, steps=steps, batch_rows=args.batch_rows,
                                  max_length=args.max_length)
            print(f"stage 1 {name:7}: {r['steps']} steps, {r['rows']} rows, {r['samples_per_s']:.1f} samples/s "
                  f"(tiny model, CPU, full fine-tune incl. collation)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
