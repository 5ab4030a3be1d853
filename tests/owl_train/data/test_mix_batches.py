"""The data path on a real mix: rows from owl_data's MixDataset through the collator into the model."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from owl_train.data import Collator, DataConfig


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from transformers import AutoTokenizer

    from owl_data.build.driver import SourceSpec, run_build
    from owl_data.build.config import BuildConfig
    from owl_train.data.mix_dataset import MixDataset
    from owl_data.mix.io import MixConfig, write_mix
    from owl_data.sources.synthetic.scenes import write_default_sources
    from owl_train.model.checkpoint import load_pretrained
    from owl_train.model.tiny import init_tiny

    root = tmp_path_factory.mktemp("mix")
    sources = [SourceSpec(n, s, synthetic=True) for n, s in write_default_sources(root / "src")]
    run_build(sources, root / "corpus", BuildConfig(max_reasoning=1))
    write_mix(root / "corpus", root / "mix", MixConfig(ratio=tuple(map(Fraction, (5, 1, 2, 2))), num_samples=40))
    model_dir = init_tiny(root / "tiny")
    rows = [MixDataset(root / "corpus", root / "mix")[i] for i in range(12)]
    return AutoTokenizer.from_pretrained(model_dir), load_pretrained(model_dir).eval(), rows


def _forward(model, b):
    with torch.no_grad():
        return model(b["input_ids"], attention_mask=b["attention_mask"], pixel_values=b["pixel_values"],
                     image_grid_thw=b["image_grid_thw"], points=b["points"], segment_ids=b["segment_ids"],
                     position_ids=b["position_ids"]).logits


def test_packed_logits_equal_padded(setup):
    tok, model, rows = setup
    assert {r["task"] for r in rows} >= {"vqa", "point_vqa", "grounding"}
    padded = Collator(tok, DataConfig(pad_to_multiple_of=8))(rows)
    packed = Collator(tok, DataConfig(pack=True, max_length=640))(rows)
    assert packed["input_ids"].shape[0] < padded["input_ids"].shape[0]
    assert packed["attention_mask"].sum() == padded["attention_mask"].sum()
    lp, lq = _forward(model, padded), _forward(model, packed)
    # each row's supervised logits are the same whichever the layout (attention kept within segments)
    assert sorted(packed["ids"]) == sorted(padded["ids"])
    per_row_p, per_row_q = _per_row(padded, lp), _per_row(packed, lq)
    for rid in padded["ids"]:
        assert per_row_q[rid].shape[0] > 0
        torch.testing.assert_close(per_row_q[rid], per_row_p[rid], atol=1e-4, rtol=1e-4)
    loss = torch.nn.functional.cross_entropy(lq[:, :-1].flatten(0, 1), packed["labels"][:, 1:].flatten())
    assert torch.isfinite(loss)


def _per_row(b, logits):
    """{row id: logits of its supervised tokens}."""
    out, k = {}, 0
    seg = b["segment_ids"]
    for i in range(b["input_ids"].shape[0]):
        ids_here = seg[i] if seg is not None else torch.zeros_like(b["input_ids"][i])
        real = b["attention_mask"][i].bool()
        for s in torch.unique_consecutive(ids_here[real]).tolist():
            m = real & (ids_here == s) & (b["labels"][i] != -100)
            out[b["ids"][k]] = logits[i][m]
            k += 1
    return out
