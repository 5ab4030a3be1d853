"""Logit parity with transformers' Qwen2-VL, both directions of the checkpoint, config layouts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _model_helpers import mm_token_type_ids, pixel_values_for, random_batch, tiny_hf_config  # noqa: E402

from owl_train.model.checkpoint import CheckpointError, hf_to_ours, load_pretrained, save_pretrained
from owl_train.model.config import OwlVLConfig


def _ref(tie=False, seed=0):
    from transformers import Qwen2VLForConditionalGeneration

    torch.manual_seed(seed)
    return Qwen2VLForConditionalGeneration(tiny_hf_config(tie=tie)).eval()


def _logits_both(ref, ours, ids, mask, grid=None, pv=None):
    with torch.no_grad():
        kw = dict(pixel_values=pv, image_grid_thw=grid, mm_token_type_ids=mm_token_type_ids(ids)) if pv is not None else {}
        r = ref(input_ids=ids, attention_mask=mask, **kw).logits
        o = ours(ids, attention_mask=mask, pixel_values=pv, image_grid_thw=grid).logits
    return r, o


@pytest.mark.parametrize("tie", [False, True])
def test_logits_match_transformers(tmp_path, tie):
    ref = _ref(tie)
    ref.save_pretrained(tmp_path)
    ours = load_pretrained(tmp_path).eval()
    g = torch.Generator().manual_seed(0)
    for left in (False, True):
        ids, mask, grid, _ = random_batch(g, 3, left_pad=left)
        r, o = _logits_both(ref, ours, ids, mask, grid, pixel_values_for(grid, g))
        real = mask.bool()
        torch.testing.assert_close(o[real], r[real], rtol=0, atol=1e-4)
    ids = torch.randint(0, 290, (2, 19))
    r, o = _logits_both(ref, ours, ids, torch.ones_like(ids))
    torch.testing.assert_close(o, r, rtol=0, atol=1e-4)


def test_ours_loads_in_transformers(tmp_path):
    from transformers import Qwen2VLForConditionalGeneration

    ref = _ref(seed=1)
    ref.save_pretrained(tmp_path / "hf")
    ours = load_pretrained(tmp_path / "hf").eval()
    save_pretrained(ours, tmp_path / "ours", max_shard_bytes=200_000)  # sharded, with index.json
    assert (tmp_path / "ours" / "model.safetensors.index.json").exists()
    back, info = Qwen2VLForConditionalGeneration.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    g = torch.Generator().manual_seed(2)
    ids, mask, grid, _ = random_batch(g, 2)
    r, o = _logits_both(back.eval(), ours, ids, mask, grid, pixel_values_for(grid, g))
    torch.testing.assert_close(o[mask.bool()], r[mask.bool()], rtol=0, atol=1e-4)
    # and our own round trip is exact
    again = load_pretrained(tmp_path / "ours")
    for (k, a), (_, b) in zip(ours.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k


def test_point_weights_go_to_their_own_file(tmp_path):
    import dataclasses

    from owl_train.model.model import OwlVL

    cfg = dataclasses.replace(OwlVLConfig.from_hf_dict(tiny_hf_config().to_dict()), point_token_id=304)
    m = OwlVL(cfg).reset_parameters(3)
    save_pretrained(m, tmp_path)
    assert (tmp_path / "owl_extra.safetensors").exists()
    again = load_pretrained(tmp_path)
    assert torch.equal(again.point_encoder.proj.weight, m.point_encoder.proj.weight)
    assert again.config.point_token_id == 304
    (tmp_path / "owl_extra.safetensors").unlink()  # a plain Qwen2-VL dir: point projection starts at zero
    assert not load_pretrained(tmp_path).point_encoder.proj.weight.any()


def test_unknown_and_missing_keys_raise(tmp_path):
    from safetensors.torch import load_file, save_file

    _ref().save_pretrained(tmp_path)
    sd = load_file(tmp_path / "model.safetensors")
    sd["model.layers.0.self_attn.q_norm.weight"] = torch.ones(4)
    save_file(sd, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="q_norm"):
        load_pretrained(tmp_path)
    del sd["model.layers.0.self_attn.q_norm.weight"], sd["model.norm.weight"]
    save_file(sd, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="missing"):
        load_pretrained(tmp_path)
    assert hf_to_ours("model.language_model.layers.3.mlp.up_proj.weight") == "decoder.layers.3.mlp.up_proj.weight"
    assert hf_to_ours("model.visual.merger.mlp.2.bias") == "visual.merger.fc2.bias"
    assert hf_to_ours("model.layers.0.self_attn.rotary_emb.inv_freq") is None


def test_reads_transformers_4x_config_layout():
    d = {  # Qwen2-VL-2B-Instruct's config.json (transformers 4.x layout), abridged
        "architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl",
        "hidden_size": 1536, "intermediate_size": 8960, "num_attention_heads": 12, "num_hidden_layers": 28,
        "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "vocab_size": 151936,
        "tie_word_embeddings": True, "torch_dtype": "bfloat16", "image_token_id": 151655,
        "video_token_id": 151656, "vision_start_token_id": 151652, "vision_end_token_id": 151653,
        "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
        "vision_config": {"depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16, "in_chans": 3,
                          "hidden_size": 1536, "patch_size": 14, "spatial_merge_size": 2,
                          "spatial_patch_size": 14, "temporal_patch_size": 2},
    }
    c = OwlVLConfig.from_hf_dict(d)
    assert c.text.mrope_section == (16, 24, 24) and c.text.head_dim == 128 and c.tie_word_embeddings
    assert c.vision.out_dim == 1536 and c.dtype == "bfloat16" and c.text.rope_theta == 1e6
    # 5.x layout round trip
    assert OwlVLConfig.from_hf_dict(json.loads(json.dumps(c.to_hf_dict()))) == c
    with pytest.raises(ValueError, match="mrope_section"):
        OwlVLConfig.from_hf_dict({**d, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 16]}})
