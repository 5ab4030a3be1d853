"""corpus.writer.ShardWriter: the one Parquet part writer, its two batch rules and shard rotation."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from owl_data.corpus.schema import SchemaError
from owl_data.corpus.writer import ShardWriter


def _rejects(n: int) -> list[dict[str, str]]:
    return [{"source": "s", "item": f"i{k}", "stage": "read", "reason": "r", "detail": ""} for k in range(n)]


def _groups(files) -> list[list[int]]:
    return [[pq.ParquetFile(f).metadata.row_group(g).num_rows for g in range(pq.ParquetFile(f).num_row_groups)]
            for f in files]


def test_fit_never_exceeds_the_batch_bytes_and_rotates_shards(tmp_path):
    with ShardWriter(tmp_path / "r", "rejects", max_batch_bytes=25, max_shard_bytes=40,
                     row_bytes=lambda row: 10) as w:
        w.write(_rejects(7))
    # 10 + 10 fit in 25, a third would not; a shard starts once it holds >= 40 bytes
    assert _groups(w.files) == [[2, 2], [2, 1]]
    assert (w.rows, w.bytes) == (7, 70)
    assert pq.read_schema(w.files[0]).metadata[b"owl.table"] == b"rejects"


def test_reach_ends_a_batch_at_the_row_that_reaches_a_bound(tmp_path):
    with ShardWriter(tmp_path / "r", "rejects", max_batch_bytes=25, batch_rule="reach", max_batch_rows=4,
                     row_bytes=lambda row: 10) as w:
        w.write(_rejects(7))
    assert _groups(w.files) == [[3, 3, 1]]  # the third row brings a batch to 30 >= 25
    with ShardWriter(tmp_path / "q", "rejects", max_batch_bytes=1000, batch_rule="reach", max_batch_rows=3,
                     row_bytes=lambda row: 10) as w:
        w.write(_rejects(7))
    assert _groups(w.files) == [[3, 3, 1]]


def test_corpus_schema_is_checked_and_another_schema_is_arrows(tmp_path):
    with pytest.raises(SchemaError, match="null value"):
        with ShardWriter(tmp_path / "r", "rejects") as w:
            w.write([{**_rejects(1)[0], "reason": None}])
    schema = pa.schema([pa.field("x", pa.int64())])
    with ShardWriter(tmp_path / "x", "images", schema=schema, row_bytes=lambda row: 1) as w:
        w.write([{"x": 1}, {"x": None}])
    assert pq.read_table(w.files[0]).column("x").to_pylist() == [1, None]
