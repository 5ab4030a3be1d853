"""``owl-data stats``: DuckDB queries over a corpus's Parquet shards."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from owl_data.corpus import schema as schemas
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


def layout_prior_stats(corpus: Path, fit_split: str = "train", score_split: str = "val",
                       k: int = DEFAULT_K) -> LayoutPriorStats:
    """The corpus's layout prior (train -> val by default); zeros and Nones when a split has no points."""
    val_xy, val_cats = description_pairs(read_description_rows(corpus, score_split))
    try:
        prior = fit_layout_prior(read_description_rows(corpus, fit_split), k)
    except ValueError:  # no train description rows
        return LayoutPriorStats(k, 0, len(val_cats), None, None, None)
    return LayoutPriorStats(k, prior.n, len(val_cats), prior.accuracy(val_xy, val_cats), prior.majority,
                            prior.majority_accuracy(val_cats))


def _glob(corpus: Path, table: str) -> list[str] | None:
    """The table's shard files (None when it has none), passed to DuckDB as a parameter: a path
    is never spliced into SQL nor read as a glob (a corpus folder named ``it's`` or ``run[1]``)."""
    files = sorted(f.as_posix() for f in (corpus / table).rglob("*.parquet"))
    return files or None


def corpus_stats(corpus: Path) -> dict[str, list[tuple]]:
    """Rows per task, split and source; rows per category (point_vqa); rejects per reason; the
    layout prior (:func:`layout_prior_stats`).

    Returns a dict of query name -> list of result tuples (each sorted); ``layout_prior`` holds
    one :class:`LayoutPriorStats` (none when the corpus has no point_vqa rows).

    Raises:
        FileNotFoundError: ``corpus`` is not a corpus (no manifest.json).
        SchemaError: a corpus of another schema major version.
    """
    from owl_data.corpus.writer import read_manifest

    corpus = Path(corpus)
    read_manifest(corpus)  # FileNotFoundError / SchemaError when it is not a corpus
    con = duckdb.connect()
    try:
        return _queries(con, corpus)
    except duckdb.Error as exc:  # an unreadable shard: one line, not a traceback
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{corpus}: cannot read its Parquet shards ({first})") from None
    finally:
        con.close()


def _queries(con: duckdb.DuckDBPyConnection, corpus: Path) -> dict[str, list]:
    out: dict[str, list] = {"rows": [], "categories": [], "kinds": [], "rejects": [], "layout_prior": []}
    for task in schemas.TASK_TABLES:
        g = _glob(corpus, task)
        if g is None:
            continue
        out["rows"] += con.execute(
            f"SELECT '{task}', split, source, count(*) FROM read_parquet(?) GROUP BY ALL ORDER BY ALL", [g]
        ).fetchall()
    g = _glob(corpus, "point_vqa")
    if g is not None:
        out["categories"] = con.execute(
            "SELECT target.category, count(*), count(DISTINCT target.instance || image_id) "
            "FROM read_parquet(?) GROUP BY ALL ORDER BY 2 DESC, 1", [g]
        ).fetchall()
        out["kinds"] = con.execute(
            "SELECT kind, (conversations[1].content = '<image><point>') AS no_question, count(*) "
            "FROM read_parquet(?) GROUP BY ALL ORDER BY ALL", [g]
        ).fetchall()
        out["layout_prior"] = [layout_prior_stats(corpus)]
    g = _glob(corpus, "rejects")
    if g is not None:
        out["rejects"] = con.execute(
            "SELECT source, reason, count(*) FROM read_parquet(?) GROUP BY ALL ORDER BY ALL", [g]
        ).fetchall()
    return out
