"""``owl-data stats``: DuckDB queries over a corpus's Parquet shards."""

from __future__ import annotations

from pathlib import Path

import duckdb

import schemas

__all__ = ["corpus_stats"]


def _glob(corpus: Path, table: str) -> str | None:
    files = sorted((corpus / table).rglob("*.parquet"))
    return (corpus / table).as_posix() + "/**/*.parquet" if files else None


def corpus_stats(corpus: Path) -> dict[str, list[tuple]]:
    """Rows per task, split and source; rows per category (point_vqa); rejects per reason.

    Returns a dict of query name -> list of result tuples (each sorted).

    Raises:
        FileNotFoundError: ``corpus`` is not a corpus (no manifest.json).
        SchemaError: a corpus of another schema major version.
    """
    from owl_data.corpus import read_manifest

    corpus = Path(corpus)
    read_manifest(corpus)  # FileNotFoundError / SchemaError when it is not a corpus
    con = duckdb.connect()
    out: dict[str, list[tuple]] = {"rows": [], "categories": [], "kinds": [], "rejects": []}
    for task in schemas.TASK_TABLES:
        g = _glob(corpus, task)
        if g is None:
            continue
        out["rows"] += con.execute(
            f"SELECT '{task}', split, source, count(*) FROM read_parquet('{g}') GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    g = _glob(corpus, "point_vqa")
    if g is not None:
        out["categories"] = con.execute(
            f"SELECT target.category, count(*), count(DISTINCT target.instance || image_id) "
            f"FROM read_parquet('{g}') GROUP BY ALL ORDER BY 2 DESC, 1"
        ).fetchall()
        out["kinds"] = con.execute(
            f"SELECT kind, (conversations[1].content = '<image><point>') AS no_question, count(*) "
            f"FROM read_parquet('{g}') GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    g = _glob(corpus, "rejects")
    if g is not None:
        out["rejects"] = con.execute(
            f"SELECT source, reason, count(*) FROM read_parquet('{g}') GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    con.close()
    return out
