"""benchmarks/train_bench.py part 3 (``--gpu``): its code path on the CPU (``--dry-run-cpu``), the
exit-2 refusals, and the flash column's logic with a pure-torch stand-in for the varlen kernel."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("train_bench", ROOT / "benchmarks" / "train_bench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def reference_varlen(q, k, v, cu_q, cu_k, max_q, max_k, causal=False):
    """``flash_attn_varlen_func`` in plain torch: q (N, H, Dh), k and v (N, Hkv, Dh), one SDPA per run."""
    assert torch.equal(cu_q, cu_k) and cu_q.dtype == torch.int32
    h, outs = q.shape[1], []
    for a, b in zip(cu_q[:-1].tolist(), cu_q[1:].tolist()):
        qs, ks, vs = (t[a:b].transpose(0, 1) for t in (q, k, v))  # (H, n, Dh)
        ks, vs = (t.repeat_interleave(h // t.shape[0], 0) for t in (ks, vs))
        outs.append(F.scaled_dot_product_attention(qs, ks, vs, is_causal=causal).transpose(0, 1))
    return torch.cat(outs)


def test_dry_run_cpu_figures(bench, tmp_path, capsys):
    out = tmp_path / "gpu.json"
    assert bench.main(["--dry-run-cpu", "--json", str(out), "--peak-flops", "1e12", "--steps", "2",
                       "--warmup", "1"]) == 0
    printed = capsys.readouterr().out
    assert "tokens/s (real tokens)" in printed and "MFU" in printed and f"wrote {out}" in printed
    r = json.loads(out.read_text())
    assert r["mode"] == "dry-run-cpu" and r["shape"] == "tiny" and r["device"] == "cpu"
    a = r["agreement"]  # two SDPA runs of one batch: identical logits
    assert a["backends"] == ["sdpa", "sdpa"] and a["tokens"] == r["batch"]["real_tokens"] > 0
    assert a["max_abs_logit_diff"] == 0.0 and a["mean_kl"] == 0.0 and a["top1_agreement"] == 1.0
    assert a["flash_calls_per_forward"] == [0, 0] and 0 < a["logit_rms"] < 10
    b = r["batch"]
    assert b["segments"] > b["rows"] == 2 and b["images"] == b["segments"] and 0 < b["padding_fraction"] < 0.05
    f = r["flops"]
    assert f["peak_flops"] == 1e12 and 0 < f["attention_seq_len"] <= b["max_length"]
    cfg = bench.bench_config("tiny")
    assert f["flops_per_token"] == pytest.approx(
        6 * f["n_text_trainable"] + 12 * cfg.text.num_hidden_layers * cfg.text.hidden_size * f["attention_seq_len"])
    assert len(r["throughput"]) == 2
    for t in r["throughput"].values():
        assert t["steps"] == 2 and t["tokens_per_step"] == b["real_tokens"]
        assert math.isfinite(t["tokens_per_s"]) and t["tokens_per_s"] > 0
        assert t["tokens_per_s"] == pytest.approx(t["tokens_per_step"] / t["step_s"])
        assert 0 < t["mfu"] < 1 and t["mfu"] < t["mfu_incl_vit"] < 1
        assert t["mfu"] == pytest.approx(f["flops_per_token"] * t["tokens_per_s"] / 1e12)
        assert math.isfinite(t["final_loss"]) and t["peak_memory_bytes"] is None
        assert t["flash_calls_per_forward"] == 0


def test_unknown_peak_prints_mfu_unknown(bench, capsys):
    r = bench.run_gpu_bench(dry_run=True, rows=1, max_length=128, steps=1, warmup=1, precision="autocast",
                            peak_override=None)
    assert r["flops"]["peak_flops"] is None and all(t["mfu"] is None for t in r["throughput"].values())
    bench.print_gpu_table(r)
    assert "unknown" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_gpu_without_cuda_exits_2(bench, capsys):
    assert bench.main(["--gpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "CUDA is not available" in err and "\n" not in err


def test_gpu_without_flash_attn_exits_2(bench, monkeypatch, capsys):
    import owl_train.model.attention as attention

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(attention, "_flash_varlen", None)
    assert bench.main(["--gpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "flash-attn is not usable" in err and "\n" not in err


def test_flash_column_with_a_reference_varlen_kernel(bench, monkeypatch):
    """The varlen path taken on the CPU (the stand-in kernel, flash_usable without the CUDA check):
    every ViT and decoder attention is counted, and the logits agree with SDPA's up to bf16."""
    import owl_train.model.attention as attention
    import owl_train.model.model as model_mod
    import owl_train.model.vision as vision_mod

    monkeypatch.setattr(attention, "_flash_varlen", reference_varlen)
    usable = lambda x: attention._flash_varlen is not None and x.dtype in (torch.float16, torch.bfloat16)  # noqa: E731
    monkeypatch.setattr(model_mod, "flash_usable", usable)
    monkeypatch.setattr(vision_mod, "flash_usable", usable)
    r = bench.run_gpu_bench(dry_run=True, rows=2, max_length=192, steps=1, warmup=1, precision="bf16",
                            peak_override=1e12, backends=("flash", "sdpa"))
    cfg = bench.bench_config("tiny")
    n_attn = cfg.vision.depth + cfg.text.num_hidden_layers
    a = r["agreement"]
    assert a["flash_calls_per_forward"] == [n_attn, 0] and r["expected_flash_calls_per_forward"] == n_attn
    assert 0 <= a["max_abs_logit_diff"] < 0.1 * a["logit_rms"] + 0.02 and 0 <= a["mean_kl"] < 1e-3
    assert a["top1_agreement"] > 0.9
    t = r["throughput"]
    assert t["flash"]["flash_calls_per_forward"] == n_attn and t["sdpa"]["flash_calls_per_forward"] == 0
    assert math.isfinite(t["flash"]["final_loss"]) and t["flash"]["tokens_per_s"] > 0
    assert attention._flash_varlen is reference_varlen  # the backend switch restored it
