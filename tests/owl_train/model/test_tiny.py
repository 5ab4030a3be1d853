"""``owl-train init-tiny``: transformers loads the tokenizer and the model; so do we."""

from __future__ import annotations

import torch
from typer.testing import CliRunner

from owl_train.cli.app import app
from owl_train.model.checkpoint import load_pretrained
from owl_train.model.tokenizer import SPECIAL_TOKENS


def test_init_tiny_loads_everywhere(tmp_path):
    from transformers import AutoTokenizer, Qwen2VLForConditionalGeneration

    vocab = tmp_path / "text.txt"
    vocab.write_text("the red car waits at the crossing near the bakery\n" * 20)
    res = CliRunner().invoke(app, ["init-tiny", str(tmp_path / "m"), "--vocab-from", str(vocab)])
    assert res.exit_code == 0, res.output
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    for t in SPECIAL_TOKENS:
        ids = tok(t, add_special_tokens=False).input_ids
        assert len(ids) == 1 and tok.convert_ids_to_tokens(ids) == [t]
    text = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|><|point|>the red car<|im_end|>"
    assert tok.decode(tok(text).input_ids) == text
    hf, info = Qwen2VLForConditionalGeneration.from_pretrained(tmp_path / "m", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    ours = load_pretrained(tmp_path / "m").eval()
    assert ours.config.point_token_id == tok.convert_tokens_to_ids("<|point|>")
    assert ours.config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert ours.config.text.vocab_size == len(tok)
    ids = torch.tensor([tok("the red car waits").input_ids])
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, hf.eval()(input_ids=ids).logits, rtol=0, atol=1e-4)


def test_init_tiny_default_text(tmp_path):
    res = CliRunner().invoke(app, ["init-tiny", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "owl_extra.safetensors").exists() and (tmp_path / "tokenizer.json").exists()
