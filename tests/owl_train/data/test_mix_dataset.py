"""The torch datasets over CORPUS + MIX (owl_train.data.mix_dataset): order, resume, ranks, refusals."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from PIL import Image
from torch.utils.data import DataLoader
from typer.testing import CliRunner

from owl_data.build.driver import SourceSpec, run_build
from owl_data.cli.app import app
from owl_data.build.config import BuildConfig
from owl_data.mix.io import CorpusChangedError, MixConfig, parse_within, write_mix
from owl_train.data.mix_dataset import MixDataset, MixIterableDataset

runner = CliRunner()

def test_fingerprint_refusal(tiny_corpus, tmp_path):
    out = tmp_path / "mix"
    assert runner.invoke(app, ["mix", str(tiny_corpus), "--ratio", "5:1:2:2", "--num-samples", "20",
                               "--out", str(out)]).exit_code == 0
    MixDataset(tiny_corpus, out)  # unchanged: accepted
    shard = tiny_corpus / "caption" / "train" / "part-00000.parquet"
    shard.write_bytes(shard.read_bytes() + b"\0")
    res = runner.invoke(app, ["mix", str(tiny_corpus), "--ratio", "5:1:2:2", "--out", str(tmp_path / "m2")])
    assert res.exit_code == 2 and "fingerprint" in res.output and "differs from the manifest" in res.output
    with pytest.raises(CorpusChangedError, match="fingerprint"):
        MixDataset(tiny_corpus, out)
    # a manifest whose fingerprint was edited is refused too
    m = json.loads((tiny_corpus / "manifest.json").read_text())
    from owl_data.corpus.writer import fingerprint

    m["fingerprint"] = fingerprint(tiny_corpus)
    (tiny_corpus / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CorpusChangedError, match="since the mix was made"):
        MixDataset(tiny_corpus, out)
    m["fingerprint"] = "0" * 64
    (tiny_corpus / "manifest.json").write_text(json.dumps(m))
    res = runner.invoke(app, ["mix", str(tiny_corpus), "--ratio", "5:1:2:2", "--out", str(tmp_path / "m3")])
    assert res.exit_code == 2 and "fingerprint" in res.output


def _take(ds: MixIterableDataset, n: int) -> list[dict]:
    it = iter(DataLoader(ds, batch_size=None, num_workers=2))
    out = [next(it) for _ in range(n)]
    del it
    return out


def test_resume_100_100_100_with_two_workers(tiny_corpus, tmp_path):
    write_mix(tiny_corpus, tmp_path / "mix", MixConfig(ratio=(5, 1, 2, 2), within=parse_within(["vqa=vqav2:3,gqa:1"]),
                                                        num_samples=300, seed=9))
    whole = _take(MixIterableDataset(tiny_corpus, tmp_path / "mix"), 300)
    ids = pq.read_table(tmp_path / "mix" / "mix.parquet").column("id").to_pylist()
    assert [s["id"] for s in whole] == ids and [s["position"] for s in whole] == list(range(300))
    got, state = [], None
    for _ in range(3):
        ds = MixIterableDataset(tiny_corpus, tmp_path / "mix")
        if state is not None:
            ds.load_state_dict(json.loads(json.dumps(state)))  # a checkpoint round trip
        part = _take(ds, 100)
        got += part
        state = ds.state_dict(samples_seen=len(part))
    assert state["consumed"] == 300
    assert [(s["position"], s["id"]) for s in got] == [(s["position"], s["id"]) for s in whole]


def test_iterable_ranks_cover_the_mix_and_rows_decode(tiny_corpus, tmp_path):
    write_mix(tiny_corpus, tmp_path / "mix", MixConfig(ratio=(5, 1, 2, 2), num_samples=40))
    per_rank = [[s["position"] for s in MixIterableDataset(tiny_corpus, tmp_path / "mix", rank=r, world=2)]
                for r in range(2)]
    assert per_rank[0] == list(range(0, 40, 2)) and per_rank[1] == list(range(1, 40, 2))
    ds = MixDataset(tiny_corpus, tmp_path / "mix")
    assert len(ds) == 40
    by_task = {}
    for i in range(len(ds)):
        by_task.setdefault(ds[i]["task"], ds[i])
    p = by_task["point_vqa"]
    assert isinstance(p["image"], Image.Image) and p["image"].size == (8, 6)
    assert p["point"] == (0.25, 0.5) and p["bbox"] == [0.0, 0.1, 0.4, 0.9]
    assert by_task["grounding"]["bbox"] == [0.1, 0.2, 0.5, 0.6] and by_task["grounding"]["point"] is None
    assert by_task["vqa"]["bbox"] is None and by_task["vqa"]["conversations"][0]["role"] == "user"


def test_on_a_built_corpus(tmp_path):
    from owl_data.sources.synthetic.scenes import write_default_scenes

    scenes = write_default_scenes(tmp_path / "scenes")
    corpus = tmp_path / "corpus"
    run_build([SourceSpec("cityscapes", str(scenes), synthetic=True)], corpus, BuildConfig())
    res = runner.invoke(app, ["mix", str(corpus), "--ratio", "5:1:2:2", "--out", str(tmp_path / "m")])
    assert res.exit_code == 2 and "task 'vqa' has no rows" in res.output
    rep = write_mix(corpus, tmp_path / "m", MixConfig(ratio=(1,), tasks=("point_vqa",), on_exhausted="stop"))
    n = json.loads((corpus / "manifest.json").read_text())["rows"]["point_vqa"]["train"]
    assert rep.length == n  # stop: exactly one epoch
    ds = MixDataset(corpus, tmp_path / "m")
    ids = pq.read_table(tmp_path / "m" / "mix.parquet").column("id").to_pylist()
    assert len(set(ids)) == n
    s = ds[0]
    assert s["task"] == "point_vqa" and s["source"] == "cityscapes" and isinstance(s["image"], Image.Image)
    assert 0 <= s["point"][0] <= 1 and len(s["bbox"]) == 4 and "<point>" in s["conversations"][0]["content"]
