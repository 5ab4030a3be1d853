"""owl_data.corpus.stats: the corpus's layout prior, on a small corpus written by hand."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from owl_data.cli.app import app
from owl_data.corpus import schema as schemas
from owl_data.corpus.layout_prior import read_description_rows
from owl_data.corpus.stats import LayoutPriorStats, corpus_stats, layout_prior_stats
from owl_data.corpus.writer import to_table
from tests.helpers import one_line_error
from tests.owl_data.mix.conftest import write_tiny_corpus

runner = CliRunner()


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


@pytest.mark.parametrize("name", ["it's", "run[1]", "a*b?"])
def test_stats_on_a_corpus_whose_path_has_quotes_or_glob_characters(tmp_path, name):
    corpus = write_tiny_corpus(tmp_path / name)
    res = runner.invoke(app, ["stats", str(corpus)])
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    assert "layout prior" in res.output and "not computed (no val description points)" in res.output


def test_stats_on_an_unreadable_shard_is_one_error_line(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "c")
    shard = sorted((corpus / "vqa").rglob("*.parquet"))[0]
    shard.write_bytes(b"PAR1 not really parquet PAR1")
    out = one_line_error(runner.invoke(app, ["stats", str(corpus)]))
    assert f"shard {shard.relative_to(corpus).as_posix()} is damaged (not readable Parquet" in out


def test_stats_layout_prior_with_null_categories(tmp_path):
    """A corpus whose train split has null categories: the prior is fit on the others only."""
    src = write_tiny_corpus(tmp_path / "c")
    val = tmp_path / "v"
    write_tiny_corpus(val, split="val")
    shutil.copytree(val / "point_vqa" / "val", src / "point_vqa" / "val")
    for f in (src / "point_vqa" / "train").glob("*.parquet"):
        t = pq.read_table(f)
        rows = t.to_pylist()
        for i, r in enumerate(rows):
            if i % 3:  # two of the three images: every point null
                r["target"]["category"] = None
        import pyarrow as pa

        pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), f)
    n_train = len({(r["point"]["x"], r["image_id"]) for r in read_description_rows(src, "train")
                   if r["target"]["category"]})
    res = runner.invoke(app, ["stats", str(src)])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("layout prior"))
    assert n_train == 1  # the one image whose points keep their category
    assert f"fit on {n_train} train points" in line and "'None'" not in line and "majority class 'car'" in line
