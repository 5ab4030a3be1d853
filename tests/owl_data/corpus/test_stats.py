"""owl_data.corpus.stats: the corpus's layout prior, on a small corpus written by hand."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
from typer.testing import CliRunner

from owl_data.corpus import schema as schemas
from owl_data.cli.app import app
from owl_data.corpus.writer import to_table
from owl_data.corpus.stats import LayoutPriorStats, corpus_stats, layout_prior_stats


def _row(i, split, image, x, y, cat, kind="description", question="What is this?"):
    return {"id": f"{split}{i}", "image_id": image, "source": "hand", "split": split,
            "conversations": [{"role": "user", "content": f"<image><point>{question}"},
                              {"role": "assistant", "content": f"A {cat}."}],
            "point": {"x": x, "y": y}, "point_origin": "mask", "kind": kind,
            "target": {"category": cat, "instance": str(i), "bbox": [0.0, 0.0, 1.0, 1.0]}, "generator": "hand"}


def _corpus(tmp_path, train, val):
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": schemas.SCHEMA_VERSION}))
    for split, rows in (("train", train), ("val", val)):
        if rows:
            (tmp_path / "point_vqa" / split).mkdir(parents=True)
            pq.write_table(to_table("point_vqa", rows), tmp_path / "point_vqa" / split / "part-00000.parquet")
    return tmp_path


def _train():
    # 10 sky points along y = 0.1, 8 road points along y = 0.9 (x = 0.1 ... ), one point asked twice
    rows = [_row(i, "train", f"t{i}", 0.1 * (i % 10) + 0.05, 0.1, "sky") for i in range(10)]
    rows += [_row(10 + i, "train", f"t{i}", 0.1 * i + 0.1, 0.9, "road") for i in range(8)]
    rows.append(_row(99, "train", "t0", 0.05, 0.1, "sky", question=""))  # the same (image, point): counted once
    rows.append(_row(98, "train", "t1", 0.5, 0.5, "car", kind="reasoning"))  # not a description: ignored
    return rows


def test_layout_prior_on_a_hand_built_corpus(tmp_path):
    val = [_row(0, "val", "v0", 0.5, 0.1, "sky"),  # 15-NN: the 10 sky points and 5 road points -> sky
           _row(1, "val", "v0", 0.5, 0.9, "road"),  # the 8 road points, then 7 sky ones -> road
           _row(2, "val", "v0", 0.5, 0.15, "car"),  # -> sky: wrong
           _row(3, "val", "v0", 0.5, 0.15, "car", question=""),  # the same pair again: counted once
           _row(4, "val", "v1", 0.5, 0.9, "person", kind="reasoning")]  # ignored
    corpus = _corpus(tmp_path, _train(), val)
    lp = layout_prior_stats(corpus)
    assert lp == LayoutPriorStats(k=15, train_points=18, val_points=3, accuracy=2 / 3, majority="sky",
                                  majority_accuracy=1 / 3)
    assert corpus_stats(corpus)["layout_prior"] == [lp]
    res = CliRunner().invoke(app, ["stats", str(corpus)])
    assert res.exit_code == 0, res.output
    assert ("layout prior (15-NN from the point's (x, y), no image; fit on 18 train points): 66.7% of 3 val "
            "points; majority class 'sky': 33.3%") in res.stdout


def test_layout_prior_without_a_train_split(tmp_path):
    corpus = _corpus(tmp_path, [], [_row(0, "val", "v0", 0.5, 0.1, "sky")])
    assert layout_prior_stats(corpus) == LayoutPriorStats(15, 0, 1, None, None, None)
    res = CliRunner().invoke(app, ["stats", str(corpus)])
    assert res.exit_code == 0 and "not computed (no train description points)" in res.stdout
