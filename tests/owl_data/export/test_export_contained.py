"""Exports stay inside ``--out``: a crafted ``image_id`` or ``format`` is refused, and so is a
corpus edited after its build (fingerprint); ``validate`` names the bad ``image_id``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from owl_data.cli.app import app
from owl_data.corpus.manifest import CorpusChangedError, finish_corpus, read_manifest
from owl_data.corpus.read import DamagedShardError
from owl_data.corpus.validate import validate_corpus
from owl_data.export import ExportError, export_corpus
from tests.helpers import one_line_error, snapshot

runner = CliRunner()


def _set_column(path: Path, column: str, old: str, new: str) -> int:
    """Rewrite ``column`` == ``old`` to ``new`` in one shard, keeping its schema (metadata included)."""
    t = pq.read_table(path)
    col = t.column(column)
    hit = pc.equal(col, old)
    n = pc.sum(hit).as_py() or 0
    t = t.set_column(t.schema.get_field_index(column), t.schema.field(column),
                     pc.if_else(hit, pa.scalar(new, pa.string()), col))
    pq.write_table(t, path)
    return n


def _crafted(syn_corpus: Path, root: Path, column: str, value: str) -> tuple[Path, str]:
    """A copy of the corpus whose first image has ``column`` set to ``value`` everywhere it appears,
    the manifest's fingerprint recomputed (so only the crafted value is wrong)."""
    corpus = root / "a" / "b" / "corpus"
    shutil.copytree(syn_corpus, corpus)
    img_shard = sorted((corpus / "images").glob("part-*.parquet"))[0]
    first = pq.read_table(img_shard, columns=["image_id", column]).to_pylist()[0]
    iid = first["image_id"]
    old = first[column]
    n = 0
    for f in sorted(corpus.rglob("*.parquet")):
        if column in pq.read_schema(f).names and (column == "format" and f.parent.name == "images"
                                                  or column == "image_id"):
            n += _set_column(f, column, old, value)
    assert n >= (2 if column == "image_id" else 1)  # an image_id: its image and its rows
    finish_corpus(corpus, read_manifest(corpus))
    return corpus, iid


@pytest.mark.parametrize("fmt", ["llava", "sharegpt", "hf"])
def test_path_like_image_id_is_refused_and_nothing_written_outside(syn_corpus, tmp_path, fmt):
    corpus, _ = _crafted(syn_corpus, tmp_path, "image_id", "../../evil")
    before = snapshot(tmp_path)
    res = runner.invoke(app, ["export", str(corpus), "--format", fmt, "--out", str(tmp_path / "a" / "b" / "x" / "out")])
    out = one_line_error(res)
    assert "'../../evil' is not a sha256 hex" in out
    assert snapshot(tmp_path) == before  # nothing written anywhere, the export included
    assert not list(tmp_path.rglob("evil*"))


def test_path_like_format_is_refused(syn_corpus, tmp_path):
    corpus, iid = _crafted(syn_corpus, tmp_path, "format", "png/../../../../evil")
    with pytest.raises(ExportError, match=f"image {iid} has format 'png/../../../../evil'"):
        export_corpus(corpus, tmp_path / "out", "llava")
    assert not (tmp_path / "out").exists() and not list(tmp_path.rglob("evil*"))


def test_validate_names_the_bad_image_id(syn_corpus, tmp_path):
    corpus, _ = _crafted(syn_corpus, tmp_path, "image_id", "../../evil")
    rep = validate_corpus(corpus)
    assert "images: image_id '../../evil' is not a sha256 hex (64 lowercase hex digits)" in rep.problems
    assert validate_corpus(syn_corpus).ok


@pytest.mark.parametrize("fmt", ["llava", "hf"])
@pytest.mark.parametrize("hashed", [True, False])
def test_corpus_edited_after_build_is_refused(syn_corpus, tmp_path, fmt, hashed):
    """A shard edited after the build: with shard hashes in the manifest the export names the
    shard as it opens it; a manifest without them (written before) falls back to the whole
    fingerprint, recomputed up front."""
    corpus = tmp_path / "corpus"
    shutil.copytree(syn_corpus, corpus)
    if not hashed:
        m = read_manifest(corpus)
        del m["shards"]
        (corpus / "manifest.json").write_text(json.dumps(m))
    shard = sorted((corpus / "point_vqa").rglob("part-*.parquet"))[0]
    rel = shard.relative_to(corpus).as_posix()
    t = pq.read_table(shard)
    pq.write_table(t.slice(1), shard)  # one row dropped, manifest untouched
    fp = read_manifest(corpus)["fingerprint"]
    want = (DamagedShardError, f"shard {rel} is damaged .*; rebuild the corpus") if hashed else \
        (CorpusChangedError, f"differs from the manifest's {fp[:12]}…; the corpus changed")
    with pytest.raises(want[0], match=want[1]):
        export_corpus(corpus, tmp_path / "out", fmt)
    assert not (tmp_path / "out").exists()
    res = runner.invoke(app, ["export", str(corpus), "--format", fmt, "--out", str(tmp_path / "o")])
    out = one_line_error(res)
    assert res.exit_code == 2 and not (tmp_path / "o").exists()
    assert (f"shard {rel} is damaged" in out) if hashed else ("content fingerprint" in out and "rebuild it" in out)
