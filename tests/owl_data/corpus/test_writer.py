"""Corpus files (owl_data.corpus.writer): shards, the fingerprint, split names."""

from __future__ import annotations

import hashlib

import pyarrow.parquet as pq
import pytest

from owl_data.corpus.writer import ShardWriter, check_split, corpus_splits, fingerprint, shard_paths


def test_fingerprint_is_the_hash_of_sorted_path_and_hash_lines(tmp_path):
    (tmp_path / "vqa" / "train").mkdir(parents=True)
    (tmp_path / "images").mkdir()
    (tmp_path / "vqa" / "train" / "part-00000.parquet").write_bytes(b"A")
    (tmp_path / "images" / "part-00000.parquet").write_bytes(b"B")
    (tmp_path / "manifest.json").write_text("{}")  # not a shard: not in the fingerprint
    lines = (f"images/part-00000.parquet {hashlib.sha256(b'B').hexdigest()}\n"
             f"vqa/train/part-00000.parquet {hashlib.sha256(b'A').hexdigest()}\n")
    assert fingerprint(tmp_path) == hashlib.sha256(lines.encode()).hexdigest()
    assert [p.relative_to(tmp_path).as_posix() for p in shard_paths(tmp_path)] == \
        ["images/part-00000.parquet", "vqa/train/part-00000.parquet"]
    (tmp_path / "vqa" / "train" / "part-00000.parquet").write_bytes(b"A\0")
    assert fingerprint(tmp_path) != hashlib.sha256(lines.encode()).hexdigest()


@pytest.mark.parametrize("split", ["train", "val", "test-dev", "v1.0", "a_b"])
def test_plain_split_names_pass(split):
    assert check_split(split) == split


@pytest.mark.parametrize("split", ["../images", "", "a/b", "train ", None])
def test_a_split_that_is_a_path_or_not_a_name_is_refused(split):
    with pytest.raises(ValueError, match="is not a split name"):
        check_split(split)


def test_corpus_splits_are_folders_that_hold_shards(tmp_path):
    for rel in ("vqa/train/part-00000.parquet", "caption/val/part-00000.parquet", "grounding/test/notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert corpus_splits(tmp_path) == ["train", "val"]  # test holds no shard
    assert corpus_splits(tmp_path, ["caption"]) == ["val"]


def test_shard_writer_rolls_shards_at_the_size_limit(tmp_path):
    rows = [{"id": f"r{i}", "image_id": "i", "source": "s", "split": "train",
             "conversations": [{"role": "user", "content": "<image>q" + "x" * 200},
                               {"role": "assistant", "content": "a"}], "answers": ["a"]} for i in range(40)]
    with ShardWriter(tmp_path / "vqa" / "train", "vqa", max_batch_bytes=2000, max_shard_bytes=4000) as w:
        w.write(rows)
    shards = sorted((tmp_path / "vqa" / "train").glob("*.parquet"))
    assert len(shards) > 1
    assert [r["id"] for s in shards for r in pq.read_table(s).to_pylist()] == [f"r{i}" for i in range(40)]


def test_image_bytes_are_stored_as_they_are_and_the_rest_zstd(tmp_path):
    """The images table's encoded files go uncompressed and without a dictionary; every other
    column (and every other table) is zstd; the rows read back unchanged."""
    import os

    rows = [{"image_id": f"i{k}", "bytes": os.urandom(5000), "format": "png", "width": 4, "height": 2,
             "split": "train"} for k in range(3)]
    with ShardWriter(tmp_path / "images", "images") as w:
        w.write(rows)
    (path,) = w.files
    meta = pq.ParquetFile(path).metadata.row_group(0)
    by = {meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)}
    assert by["bytes"].compression == "UNCOMPRESSED" and not by["bytes"].has_dictionary_page
    assert {c.compression for n, c in by.items() if n != "bytes"} == {"ZSTD"}
    assert pq.read_table(path).to_pylist() == rows
    with ShardWriter(tmp_path / "rejects", "rejects") as w:
        w.write([{"source": "s", "item": "a", "stage": "read", "reason": "r", "detail": "d"}])
    m = pq.ParquetFile(w.files[0]).metadata.row_group(0)
    assert {m.column(i).compression for i in range(m.num_columns)} == {"ZSTD"}


def test_rows_held_as_arrow_write_the_same_bytes_as_one_conversion(tmp_path, monkeypatch):
    """Pending rows converted to Arrow every CONVERT_ROWS give files byte-equal to converting the
    whole batch at once, with the same row groups (batch bytes bound crossed several times)."""
    from owl_data.corpus import writer

    rows = [{"source": "s", "item": f"item-{k}", "stage": "read", "reason": f"r{k % 7}", "detail": "x" * (k % 50)}
            for k in range(2500)]

    def written(folder):
        with ShardWriter(tmp_path / folder, "rejects", max_batch_bytes=40_000) as w:
            w.write(rows)
        return [p.read_bytes() for p in w.files], w.rows

    small, n1 = written("small")
    monkeypatch.setattr(writer, "CONVERT_ROWS", 10**9)
    whole, n2 = written("whole")
    assert small == whole and n1 == n2 == 2500
    md = pq.ParquetFile(tmp_path / "small" / "part-00000.parquet").metadata
    assert md.num_row_groups > 3 and pq.read_table(tmp_path / "small").to_pylist() == rows
