"""Rotary frequencies stay float32 when the model is cast to bf16 (as transformers keeps them)."""

from __future__ import annotations

import pytest
import torch

from owl_train.model.attention import rotary_inv_freq
from owl_train.model.config import OwlVLConfig, TextConfig, VisionConfig
from owl_train.model.model import OwlVL


def _tiny() -> OwlVL:
    cfg = OwlVLConfig(vision=VisionConfig(depth=1, embed_dim=32, num_heads=2, out_dim=64),
                      text=TextConfig(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=1,
                                      num_attention_heads=4, num_key_value_heads=2, rope_theta=1e6,
                                      mrope_section=(2, 3, 3)),
                      image_token_id=3, video_token_id=4, vision_start_token_id=5, vision_end_token_id=6)
    return OwlVL(cfg).reset_parameters(0)


def test_inv_freq_is_recomputed_in_float32_after_a_bf16_cast():
    m = _tiny()
    ref_text = 1.0 / 1e6 ** (torch.arange(0, 16, 2, dtype=torch.float32) / 16)
    ref_vis = 1.0 / 1e4 ** (torch.arange(0, 8, 2, dtype=torch.float32) / 8)
    assert torch.equal(m.decoder.inv_freq, ref_text) and torch.equal(m.visual.inv_freq, ref_vis)
    m = m.to(torch.bfloat16)
    assert m.decoder.inv_freq.dtype == torch.bfloat16  # torch casts the buffer ...
    assert not torch.equal(m.decoder.inv_freq.float(), ref_text)  # ... and loses precision
    got = rotary_inv_freq(m.decoder.inv_freq, 1e6, 16)
    assert got.dtype == torch.float32 and torch.equal(got, ref_text)  # what the decoder uses
    assert torch.equal(rotary_inv_freq(m.visual.inv_freq, 1e4, 8), ref_vis)


def test_bf16_model_angles_match_fp32_at_long_positions():
    from owl_train.model.decoder import mrope_cos_sin

    m = _tiny()
    pos = torch.full((3, 1, 1), 30000, dtype=torch.long)
    cos32, _ = mrope_cos_sin(pos, m.decoder.inv_freq, (2, 3, 3), torch.float32)
    m = m.to(torch.bfloat16)
    cos16, _ = mrope_cos_sin(pos, rotary_inv_freq(m.decoder.inv_freq, 1e6, 16), (2, 3, 3), torch.float32)
    stale, _ = mrope_cos_sin(pos, m.decoder.inv_freq, (2, 3, 3), torch.float32)
    assert torch.equal(cos16, cos32)
    assert (stale - cos32).abs().max() > 1e-3  # what the bf16 buffer alone would give


@pytest.mark.gpu
def test_bf16_model_on_cuda_recomputes_float32_frequencies_on_the_device():
    """The same on a CUDA device: the recomputed frequencies are float32 on the buffer's device (no
    device mix in the angle computation) and the angles stay near the fp32 ones where the bf16 buffer's
    are far off (CUDA's pow may differ from the CPU's by an ulp, so near, not equal)."""
    from owl_train.model.decoder import mrope_cos_sin

    m = _tiny().cuda()
    ref_text = 1.0 / 1e6 ** (torch.arange(0, 16, 2, dtype=torch.float32) / 16)
    pos = torch.full((3, 1, 1), 30000, dtype=torch.long, device="cuda")
    cos32, _ = mrope_cos_sin(pos, m.decoder.inv_freq, (2, 3, 3), torch.float32)
    m = m.to(torch.bfloat16)
    got = rotary_inv_freq(m.decoder.inv_freq, 1e6, 16)
    assert got.dtype == torch.float32 and got.device.type == "cuda"
    assert torch.allclose(got.cpu(), ref_text, rtol=1e-6, atol=0)
    cos16, _ = mrope_cos_sin(pos, got, (2, 3, 3), torch.float32)
    stale, _ = mrope_cos_sin(pos, m.decoder.inv_freq, (2, 3, 3), torch.float32)
    assert cos16.device.type == "cuda"
    assert (cos16 - cos32).abs().max() < 1e-2 < (stale - cos32).abs().max()
