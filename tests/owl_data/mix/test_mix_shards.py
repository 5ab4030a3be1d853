"""mix over a corpus whose shards are checked against the manifest's hashes (owl_data.corpus.read)."""

from __future__ import annotations

import json
import re
import shutil
from fractions import Fraction

import pytest
from typer.testing import CliRunner

from owl_data.cli.app import app
from owl_data.corpus.manifest import MANIFEST, read_manifest
from owl_data.mix.io import MIX_JSON, CorpusChangedError, DamagedShardError, MixConfig, open_corpus, write_mix
from tests.helpers import one_line_error
from tests.owl_data.corpus.shard_helpers import first_shard, flip_byte, hashed_tiny, strip_shards

runner = CliRunner()
CFG = MixConfig(ratio=(Fraction(1),) * 4, num_samples=40)


@pytest.mark.parametrize("folder", ["vqa", "point_vqa"])
def test_mix_refuses_a_damaged_shard_with_one_line(tmp_path, folder):
    corpus = hashed_tiny(tmp_path / "c")
    rel = flip_byte(corpus, first_shard(corpus, folder))
    with pytest.raises(DamagedShardError, match=re.escape(f"shard {rel} is damaged (sha256 mismatch)")):
        write_mix(corpus, tmp_path / "m", CFG)
    out = one_line_error(runner.invoke(app, ["mix", str(corpus), "--ratio", "1:1:1:1", "--out", str(tmp_path / "m")]))
    assert f"shard {rel} is damaged (sha256 mismatch); rebuild the corpus" in " ".join(out.split())
    assert not (tmp_path / "m").exists()


def test_mix_of_an_old_manifest_without_shards_is_the_same_mix(tmp_path):
    corpus = hashed_tiny(tmp_path / "c")
    write_mix(corpus, tmp_path / "m1", CFG)
    strip_shards(corpus)
    write_mix(corpus, tmp_path / "m2", CFG)
    assert (tmp_path / "m1" / "mix.parquet").read_bytes() == (tmp_path / "m2" / "mix.parquet").read_bytes()
    flip_byte(corpus, first_shard(corpus, "caption"))  # no hashes: the whole fingerprint still refuses it
    with pytest.raises(CorpusChangedError, match="differs from the manifest's"):
        write_mix(corpus, tmp_path / "m3", CFG)


def test_a_mix_detects_its_corpus_rebuilt(tmp_path):
    corpus = hashed_tiny(tmp_path / "c")
    write_mix(corpus, tmp_path / "m", CFG)
    fp = json.loads((tmp_path / "m" / MIX_JSON).read_text())["fingerprint"]
    assert open_corpus(corpus, fp).fingerprint == fp == read_manifest(corpus)["fingerprint"]
    other = hashed_tiny(tmp_path / "o", {"vqa": {"vqav2": 3, "gqa": 4}, "caption": 5, "grounding": 7, "point_vqa": 2})
    reader = open_corpus(corpus, fp)
    shutil.rmtree(corpus)
    shutil.copytree(other, corpus)  # rebuilt while the reader held the old manifest
    rel = first_shard(corpus, "vqa")
    with pytest.raises(CorpusChangedError, match=re.escape(f"corpus {corpus} changed while reading")):
        reader.read_table(rel)
    with pytest.raises(CorpusChangedError, match="differs from the mix's"):
        open_corpus(corpus, fp)
    assert (corpus / MANIFEST).is_file()
