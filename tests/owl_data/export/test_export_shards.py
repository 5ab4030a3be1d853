"""Exports open every corpus shard checked against the manifest's hash (owl_data.corpus.read)."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from owl_data.cli.app import app
from owl_data.corpus.read import DamagedShardError
from owl_data.export import export_corpus
from tests.helpers import one_line_error, snapshot
from tests.owl_data.corpus.shard_helpers import first_shard, flip_byte, strip_shards

runner = CliRunner()


@pytest.mark.parametrize("fmt", ["hf", "llava", "sharegpt"])
@pytest.mark.parametrize("folder", ["images", "point_vqa"])
def test_export_refuses_a_damaged_shard_with_one_line(syn_corpus, tmp_path, fmt, folder):
    corpus = tmp_path / "corpus"
    shutil.copytree(syn_corpus, corpus)
    rel = flip_byte(corpus, first_shard(corpus, folder))
    with pytest.raises(DamagedShardError, match=re.escape(f"shard {rel} is damaged (sha256 mismatch)")):
        export_corpus(corpus, tmp_path / "out", fmt)
    out = one_line_error(runner.invoke(app, ["export", str(corpus), "--format", fmt, "--out", str(tmp_path / "o")]))
    assert f"corpus {corpus}: shard {rel} is damaged (sha256 mismatch); rebuild the corpus" in " ".join(out.split())
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize("fmt", ["hf", "llava"])
def test_export_of_an_old_manifest_without_shards_is_the_same(syn_corpus, tmp_path, fmt):
    export_corpus(syn_corpus, tmp_path / "a", fmt)
    corpus = tmp_path / "corpus"
    shutil.copytree(syn_corpus, corpus)
    strip_shards(corpus)
    export_corpus(corpus, tmp_path / "b", fmt)
    a, b = snapshot(tmp_path / "a"), snapshot(tmp_path / "b")
    sa, sb = (json.loads(x.pop("owl_export.json")) for x in (a, b))  # it names the corpus folder
    assert sa.pop("corpus") != sb.pop("corpus") and sa == sb
    assert len(a) > 3 and a == b
