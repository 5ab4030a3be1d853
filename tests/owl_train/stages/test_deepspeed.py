"""DeepSpeed ZeRO-2, one process on CPU (gloo): the run completes and zero-to-fp32 gives a model
folder that loads with no missing keys (tied embeddings kept) and the same logits.

The first DeepSpeed start compiles a communication op (~35-60 s, cached in ~/.cache/torch_extensions).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]

pytest.importorskip("deepspeed", reason="deepspeed is in the train extra")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tied_model(src: Path, dst: Path) -> Path:
    from owl_train.model import OwlVL, load_pretrained, save_pretrained
    from owl_train.stages.checkpoints import copy_tokenizer

    m = load_pretrained(src)
    tied = OwlVL(replace(m.config, tie_word_embeddings=True))
    sd = {k: v for k, v in m.state_dict().items() if k != "lm_head.weight"}
    tied.load_state_dict(sd)
    save_pretrained(tied, dst)
    copy_tokenizer(src, dst)
    return dst


@pytest.mark.slow
def test_zero2_cpu_run_and_zero_to_fp32(world, tmp_path):
    from owl_train.model import load_pretrained
    from owl_train.stages.checkpoints import zero_to_fp32
    from owl_train.data.rows import corpus_rows
    from owl_train.data import Collator, DataConfig
    from owl_train.stages.checkpoints import load_tokenizer

    model = _tied_model(world["tiny"], tmp_path / "tied")
    out = tmp_path / "ds"
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-c", "from owl_train.cli.app import app; app()", "stage1",
           "--deepspeed", str(ROOT / "pipelines" / "zero2.json"), "--model", str(model),
           "--corpus", str(world["corpus"]), "--mix", str(world["mix"]), "--out", str(out), "--max-steps", "3",
           "--set", "batch_size=2", "--set", "max_pixels=12544", "--set", "progress=false",
           "--set", "tensorboard=false", "--set", "lr=1e-2", "--set", "device=cpu"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "stage1: 3 steps" in res.stdout
    assert (out / "checkpoints" / "latest").read_text().strip() == "step-00000003"

    fp32 = zero_to_fp32(out / "checkpoints", tmp_path / "fp32")
    a = load_pretrained(fp32)  # raises on any missing or unmapped key
    b = load_pretrained(out / "model")
    assert a.config.tie_word_embeddings and a.lm_head is None
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    init = load_pretrained(model).state_dict()
    assert not torch.equal(init["decoder.embed_tokens.weight"], sa["decoder.embed_tokens.weight"])  # it trained
    assert torch.equal(init["visual.blocks.0.fc1.weight"], sa["visual.blocks.0.fc1.weight"])  # frozen kept
    rows = corpus_rows(world["corpus"], "vqa", "val", limit=2)
    bt = Collator(load_tokenizer(fp32), DataConfig(max_pixels=12544))(rows)
    with torch.no_grad():
        kw = dict(attention_mask=bt["attention_mask"], pixel_values=bt["pixel_values"],
                  image_grid_thw=bt["image_grid_thw"])
        assert torch.equal(a(bt["input_ids"], **kw).logits, b(bt["input_ids"], **kw).logits)
