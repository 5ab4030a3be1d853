"""validate_corpus (owl_data.corpus.validate): what it checks and reports."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from owl_data.corpus.validate import validate_corpus


def test_validate_applies_the_placeholder_rule_to_every_row(lcb_corpus):
    f = next((lcb_corpus / "caption").rglob("*.parquet"))
    t = pq.read_table(f)
    rows = t.to_pylist()
    rows[0]["conversations"][-1]["content"] += " <point>"
    pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), f)
    rep = validate_corpus(lcb_corpus)
    assert any("placeholders" in p and "<point>" in p for p in rep.problems), rep.problems
