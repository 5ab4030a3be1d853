"""owl_train.runner: the interface eval and infer answer through (load, answer rows, held-out loss)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from owl_train import runner
from owl_train.data import DataConfig
from owl_train.model.tiny import init_tiny


def _row(rid: str, user: str = "<image><point>What is it?", point=(0.3, 0.6), seed: int = 0) -> dict:
    img = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (56, 112, 3), dtype=np.uint8))
    return {"id": rid, "task": "point_vqa", "image": img, "point": point, "bbox": None,
            "conversations": [{"role": "user", "content": user}, {"role": "assistant", "content": "A red car."}]}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return runner.load_model(init_tiny(tmp_path_factory.mktemp("tiny") / "m"))


def test_load_model_is_in_eval_mode(loaded):
    assert not loaded.model.training and loaded.prompt is None


def test_prompt_row_stops_before_the_first_answer():
    r = _row("a")
    assert runner.prompt_row(r)["conversations"] == r["conversations"][:1] and r["conversations"][1]


def test_answer_rows_keeps_order_and_gives_none_for_a_dropped_row(loaded):
    rows = [_row("a"), _row("bad", point=(2.0, 0.5)), _row("b", "<image><point>Which colour is it", (0.9, 0.1), 5),
            _row("c", "<image>Describe the scene.", None, 9)]
    got = runner.answer_rows(loaded, rows, DataConfig(), batch_size=3, max_new_tokens=6)
    assert [g is None for g in got] == [False, True, False, False]
    # each answer is its own row's (the three differ), and batching changes none (left padding)
    alone = [runner.answer_rows(loaded, [r], DataConfig(), max_new_tokens=6)[0] for r in rows]
    assert got == alone and len({g for g in got if g is not None}) == 3


def test_heldout_loss_is_a_positive_mean_and_refuses_rows_without_labels(loaded):
    loss = runner.heldout_loss(loaded, [_row("a"), _row("b", point=(0.7, 0.2))], DataConfig())
    assert np.isfinite(loss) and loss > 0
    with pytest.raises(ValueError, match="no supervised tokens"):
        runner.heldout_loss(loaded, [_row("bad", point=(2.0, 0.5))], DataConfig())
