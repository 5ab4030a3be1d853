"""``owl-data stats``: DuckDB queries over a corpus's Parquet shards (each read by pyarrow,
checked against the manifest's hash as it is opened: :mod:`owl_data.corpus.read`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.dataset as ds

from owl_data.corpus import schema as schemas
from owl_data.corpus.read import CorpusReader
from owl_data.corpus.layout_prior import DEFAULT_K, description_pairs, fit_layout_prior, read_description_rows

__all__ = ["corpus_stats", "LayoutPriorStats", "layout_prior_stats"]


@dataclass(frozen=True)
class LayoutPriorStats:
    """How well a point's (x, y) alone predicts its category on this corpus (no image).

    ``accuracy``: the k-NN vote of :mod:`owl_data.corpus.layout_prior` fitted on the ``train_points``
    distinct (image, point) pairs of the train split's description rows, scored on the
    ``val_points`` pairs of the val split; ``majority_accuracy``: always answering the train
    split's most frequent category ``majority``. Both None when there is nothing to score.
    """

    k: int
    train_points: int
    val_points: int
    accuracy: float | None
    majority: str | None
    majority_accuracy: float | None


def layout_prior_stats(corpus: Path | CorpusReader, fit_split: str = "train", score_split: str = "val",
                       k: int = DEFAULT_K) -> LayoutPriorStats:
    """The corpus's layout prior (train -> val by default); zeros and Nones when a split has no points."""
    val_xy, val_cats = description_pairs(read_description_rows(corpus, score_split))
    try:
        prior = fit_layout_prior(read_description_rows(corpus, fit_split), k)
    except ValueError:  # no train description rows
        return LayoutPriorStats(k, 0, len(val_cats), None, None, None)
    return LayoutPriorStats(k, prior.n, len(val_cats), prior.accuracy(val_xy, val_cats), prior.majority,
                            prior.majority_accuracy(val_cats))


def _register(con: duckdb.DuckDBPyConnection, reader: CorpusReader, table: str) -> str | None:
    """Register the table's checked shards on ``con`` as view ``t_<table>``; its name, or None
    when it has no shards (no path is ever spliced into SQL nor read as a glob)."""
    tables = [reader.read_table(rel) for rel in reader.files(table)]
    if not tables:
        return None
    con.register(f"t_{table}", ds.InMemoryDataset(tables))
    return f"t_{table}"


def corpus_stats(corpus: Path) -> dict[str, list[tuple]]:
    """Rows per task, split and source; rows per category (point_vqa); rejects per reason; the
    layout prior (:func:`layout_prior_stats`).

    Returns a dict of query name -> list of result tuples (each sorted); ``layout_prior`` holds
    one :class:`LayoutPriorStats` (none when the corpus has no point_vqa rows).

    Raises:
        FileNotFoundError: ``corpus`` is not a corpus (no manifest.json).
        SchemaError: a corpus of another schema major version.
        DamagedShardError / CorpusChangedError: a shard that differs from the manifest's hash.
    """
    reader = CorpusReader(corpus)  # FileNotFoundError / SchemaError when it is not a corpus
    con = duckdb.connect()
    try:
        return _queries(con, reader)
    except duckdb.Error as exc:  # an unreadable shard: one line, not a traceback
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{reader.root}: cannot read its Parquet shards ({first})") from None
    finally:
        con.close()


def _queries(con: duckdb.DuckDBPyConnection, reader: CorpusReader) -> dict[str, list]:
    out: dict[str, list] = {"rows": [], "categories": [], "kinds": [], "rejects": [], "layout_prior": []}
    for task in schemas.TASK_TABLES:
        t = _register(con, reader, task)
        if t is not None:
            out["rows"] += con.execute(
                f"SELECT '{task}', split, source, count(*) FROM {t} GROUP BY ALL ORDER BY ALL").fetchall()
    if reader.files("point_vqa"):
        out["categories"] = con.execute(
            "SELECT target.category, count(*), count(DISTINCT target.instance || image_id) "
            "FROM t_point_vqa GROUP BY ALL ORDER BY 2 DESC, 1").fetchall()
        out["kinds"] = con.execute(
            "SELECT kind, (conversations[1].content = '<image><point>') AS no_question, count(*) "
            "FROM t_point_vqa GROUP BY ALL ORDER BY ALL").fetchall()
        out["layout_prior"] = [layout_prior_stats(reader)]
    if _register(con, reader, "rejects") is not None:
        out["rejects"] = con.execute(
            "SELECT source, reason, count(*) FROM t_rejects GROUP BY ALL ORDER BY ALL").fetchall()
    return out
