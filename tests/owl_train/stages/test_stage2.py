"""Stage 2 (P-tuning): only the prompt encoder changes, cached generation equals uncached, and the
held-out no-question description loss falls below the stage-1 model's."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from owl_train.data import Collator, DataConfig
from owl_train.runner import heldout_loss
from owl_train.stages import generate_batch, load_model_dir
from owl_train.data.rows import corpus_rows, is_stage2_row

sys.path.insert(0, str(Path(__file__).parent))
from _stage_helpers import SMALL  # noqa: E402


def test_only_the_prompt_encoder_changes(stage2_run):
    res, s1, out = stage2_run
    assert res.steps == 30 and set(res.task_counts) == {"point_vqa"}
    a, b = load_model_dir(s1), load_model_dir(out)
    assert a.prompt is None and b.prompt is not None and b.prompt.num_virtual_tokens == 8
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    fresh = type(b.prompt)(8, b.prompt.dim, b.prompt.hidden, seed=0).state_dict()
    assert any(not torch.equal(fresh[k], v) for k, v in b.prompt.state_dict().items())


def test_trains_on_no_question_descriptions_only(stage2_run, world):
    res, _, _ = stage2_run
    desc = {r["id"] for r in corpus_rows(world["corpus"], "point_vqa", "train",
                                         where=lambda r: is_stage2_row(r["conversations"], r["kind"]))}
    trained = {i for step in res.ids for i in step}
    assert trained and trained <= desc


def test_heldout_loss_is_lower_than_stage1(stage2_run, world):
    _, s1, out = stage2_run
    rows = corpus_rows(world["corpus"], "point_vqa", "val", limit=32,
                       where=lambda r: is_stage2_row(r["conversations"], r["kind"]))
    assert len(rows) == 32
    dc = DataConfig(max_pixels=SMALL["max_pixels"], max_length=SMALL["max_length"])
    before = heldout_loss(load_model_dir(s1), rows, dc)
    after = heldout_loss(load_model_dir(out), rows, dc)
    assert after < before - 0.01, (before, after)


def test_generation_with_and_without_cache_is_the_same(stage2_run, world):
    _, _, out = stage2_run
    m = load_model_dir(out)
    rows = corpus_rows(world["corpus"], "point_vqa", "val", limit=4)
    coll = Collator(m.tokenizer, DataConfig(max_pixels=SMALL["max_pixels"], num_virtual_tokens=8,
                                            padding_side="left"))
    prompts = [{**r, "conversations": [{"role": "user", "content": "<image><point>"}]} for r in rows[:2]]
    prompts += [{**r, "conversations": [r["conversations"][0]]} for r in rows[2:]]
    b = coll([coll.encode(r, add_generation_prompt=True) for r in prompts])
    assert int(b["virtual_mask"].sum()) == 16
    a = generate_batch(m.model, b, m.prompt, max_new_tokens=8)
    c = generate_batch(m.model, b, m.prompt, max_new_tokens=8, use_cache=False)
    assert a.shape == (4, 8) and torch.equal(a, c)
    s1 = generate_batch(m.model, b, m.prompt, max_new_tokens=8, do_sample=True, temperature=2.0, seed=3)
    s2 = generate_batch(m.model, b, m.prompt, max_new_tokens=8, do_sample=True, temperature=2.0, seed=3,
                        use_cache=False)
    assert torch.equal(s1, s2)
