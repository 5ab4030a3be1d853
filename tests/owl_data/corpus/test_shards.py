"""Shard hashes in the manifest and the reader that checks them (owl_data.corpus.read), validate naming damaged shards."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from owl_data.cli.app import app
from owl_data.corpus.manifest import MANIFEST, fingerprint, read_manifest
from owl_data.corpus.read import CorpusChangedError, CorpusReader, DamagedShardError
from owl_data.corpus.stats import corpus_stats
from owl_data.corpus.validate import validate_corpus
from tests.owl_data.corpus.shard_helpers import first_shard, flip_byte, hashed_tiny, strip_shards
from tests.owl_data.mix.conftest import write_tiny_corpus

runner = CliRunner()


def test_manifest_records_every_shard_by_its_file_bytes(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "c")
    before = read_manifest(corpus)["fingerprint"]
    hashed_tiny(corpus)
    m = read_manifest(corpus)
    on_disk = {p.relative_to(corpus).as_posix(): p for p in corpus.rglob("*.parquet")}
    assert len(on_disk) >= 6 and set(m["shards"]) == set(on_disk)
    for rel, p in on_disk.items():
        data = p.read_bytes()
        assert m["shards"][rel] == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                                    "rows": pq.read_metadata(p).num_rows}
    # the fingerprint is unchanged: the same sha256 over "path sha256" lines, now from those hashes
    lines = "".join(f"{rel} {m['shards'][rel]['sha256']}\n" for rel in sorted(m["shards"]))
    assert m["fingerprint"] == before == fingerprint(corpus) == hashlib.sha256(lines.encode()).hexdigest()
    assert sum(e["rows"] for rel, e in m["shards"].items() if rel.startswith("vqa/")) == 16


def test_a_flipped_byte_is_named_by_validate_and_the_rest_still_checked(lcb_corpus):
    corpus = lcb_corpus
    assert validate_corpus(corpus).ok and "shards" in read_manifest(corpus)
    bad = [flip_byte(corpus, first_shard(corpus, "images")), flip_byte(corpus, first_shard(corpus, "grounding"))]
    rep = validate_corpus(corpus)
    damaged = [p for p in rep.problems if "is damaged (sha256 mismatch)" in p]
    assert damaged == [f"corpus {corpus}: shard {rel} is damaged (sha256 mismatch); rebuild the corpus"
                       for rel in sorted(bad)]  # each once, in path order
    assert rep.checked_rows > 0 and not rep.notes
    res = runner.invoke(app, ["validate", str(corpus)])
    assert res.exit_code == 1
    flat = " ".join(res.output.split())
    assert all(f"shard {rel} is damaged" in flat for rel in bad)


def test_validate_names_missing_and_unlisted_shards(tmp_path):
    corpus = hashed_tiny(tmp_path / "c")
    gone = first_shard(corpus, "grounding")
    (corpus / gone).unlink()
    shutil.copy(corpus / first_shard(corpus, "caption"), corpus / "caption" / "train" / "part-00099.parquet")
    probs = validate_corpus(corpus).problems
    assert f"corpus {corpus}: shard {gone} is damaged (missing); rebuild the corpus" in probs
    assert (f"corpus {corpus}: shard caption/train/part-00099.parquet is damaged (not listed in the manifest); "
            "rebuild the corpus") in probs


def test_reader_checks_size_hash_listing_and_file_kind(tmp_path):
    corpus = hashed_tiny(tmp_path / "c")
    r = CorpusReader(corpus)
    rel = first_shard(corpus, "point_vqa")
    assert r.read_table(rel).num_rows == r.shards[rel]["rows"] > 0
    data = (corpus / rel).read_bytes()
    (corpus / rel).write_bytes(data[:-1])
    with pytest.raises(DamagedShardError, match=f"shard {rel} is damaged \\({len(data) - 1} bytes, the manifest "
                                                f"says {len(data)}\\)") as exc:
        r.open(rel)
    assert exc.value.shard == rel
    for in_memory in (True, False):
        (corpus / rel).write_bytes(data)
        flip_byte(corpus, rel, at=10)
        with pytest.raises(DamagedShardError, match="sha256 mismatch"):
            r.open(rel, in_memory=in_memory)
    (corpus / rel).unlink()
    os.mkfifo(corpus / rel)  # never waited on
    with pytest.raises(DamagedShardError, match="not a regular file"):
        r.open(rel)
    (corpus / rel).unlink()
    with pytest.raises(DamagedShardError, match="missing"):
        r.open(rel)
    for outside in ("../x.parquet", "/etc/passwd"):
        for reader in (r, CorpusReader(corpus, {k: v for k, v in r.manifest.items() if k != "shards"})):
            with pytest.raises(DamagedShardError, match=f"shard {outside} is damaged \\(not a path inside the corpus"):
                reader.open(outside)
    (corpus / "vqa" / "stray.parquet").write_bytes(b"")
    with pytest.raises(DamagedShardError, match="shard vqa/stray.parquet is damaged \\(not listed"):
        r.files("vqa")


def test_parsed_from_the_bytes_that_were_hashed(tmp_path):
    """An opened shard is parsed from the bytes read once: removing the file afterwards changes nothing."""
    corpus = hashed_tiny(tmp_path / "c")
    r = CorpusReader(corpus)
    rel = first_shard(corpus, "vqa")
    want = pq.read_table(corpus / rel)
    pf = r.open(rel)
    (corpus / rel).unlink()
    assert pf.read().equals(want)


def test_streamed_shard_replaced_by_a_rename_is_hashed_again(tmp_path):
    corpus = hashed_tiny(tmp_path / "c")
    r = CorpusReader(corpus)
    rel = first_shard(corpus, "images")
    assert r.open(rel, in_memory=False).metadata.num_rows == 3
    copy = pickle.loads(pickle.dumps(r))  # what a DataLoader worker gets: the check is remembered
    assert copy._checked == r._checked and copy.open(rel, in_memory=False).metadata.num_rows == 3
    tmp = corpus / "images" / "tmp"
    shutil.copy(corpus / rel, tmp)
    flip_byte(corpus, "images/tmp")
    os.replace(tmp, corpus / rel)  # another inode: checked again
    with pytest.raises(DamagedShardError, match=f"shard {rel} is damaged \\(sha256 mismatch\\)"):
        copy.open(rel, in_memory=False)


def test_a_shard_and_manifest_of_another_build_is_changed_while_reading(tmp_path):
    corpus = hashed_tiny(tmp_path / "c")
    other = hashed_tiny(tmp_path / "o", {"vqa": {"vqav2": 3, "gqa": 4}, "caption": 5, "grounding": 7, "point_vqa": 2})
    r = CorpusReader(corpus)
    rel = first_shard(corpus, "vqa")
    assert r.shards[rel] != read_manifest(other)["shards"][rel]
    shutil.copy(other / rel, corpus / rel)  # the rebuild: another build's shard, then its manifest
    shutil.copy(other / MANIFEST, corpus / MANIFEST)
    msg = re.escape(f"corpus {corpus} changed while reading (rebuilt by another command); rerun")
    with pytest.raises(CorpusChangedError, match=msg):
        r.open(rel)
    (corpus / rel).unlink()  # a shard vanishing mid-walk, manifest changed: the same
    with pytest.raises(CorpusChangedError, match=msg):
        r.open(rel)


def test_shards_that_do_not_add_up_to_the_fingerprint(tmp_path):
    corpus = hashed_tiny(tmp_path / "c")
    m = read_manifest(corpus)
    rel = first_shard(corpus, "caption")
    m["shards"][rel]["sha256"] = "0" * 64
    (corpus / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(DamagedShardError, match="shard manifest.json is damaged \\(its shard hashes do not add up"):
        CorpusReader(corpus)
    probs = validate_corpus(corpus).problems
    assert any("shard manifest.json is damaged" in p for p in probs)


def test_a_manifest_without_shards_still_reads(lcb_corpus):
    corpus = lcb_corpus
    strip_shards(corpus)
    r = CorpusReader(corpus)
    assert not r.hashed and r.files("grounding") == sorted(p.relative_to(corpus).as_posix()
                                                           for p in (corpus / "grounding").rglob("*.parquet"))
    n = read_manifest(corpus)["rows"]["grounding"]
    assert {"train": sum(r.read_table(f).num_rows for f in r.files("grounding"))} == n
    rep = validate_corpus(corpus)
    assert rep.ok and len(rep.notes) == 1 and "records no shard hashes" in rep.notes[0]
    res = runner.invoke(app, ["validate", str(corpus)])
    assert res.exit_code == 0 and "records no shard hashes" in " ".join(res.output.split())
    assert {(t, s): c for t, s, _, c in corpus_stats(corpus)["rows"] if t == "grounding"} == {("grounding", "train"): n["train"]}
    flip_byte(corpus, first_shard(corpus, "caption"))  # unchecked shards: the whole fingerprint still tells
    assert any("fingerprint" in p and "differs from the manifest's" in p for p in validate_corpus(corpus).problems)
    with pytest.raises(CorpusChangedError, match="differs from the manifest's"):
        CorpusReader(corpus, legacy_check=True)


def test_stats_and_show_refuse_a_damaged_shard(tmp_path):
    corpus = hashed_tiny(tmp_path / "c")
    rel = flip_byte(corpus, first_shard(corpus, "caption"))
    for args in (["stats", str(corpus)], ["show", str(corpus), "--out", str(tmp_path / "g")]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and res.output.count("error:") == 1, res.output
        assert f"shard {rel} is damaged (sha256 mismatch)" in " ".join(res.output.split())
    assert not (tmp_path / "g").exists()
