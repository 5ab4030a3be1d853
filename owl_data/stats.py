"""``owl-data stats``: DuckDB queries over a corpus's Parquet shards."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

import schemas
from owl_data.layout_prior import DEFAULT_K, description_pairs, fit_layout_prior, read_description_rows

__all__ = ["corpus_stats", "LayoutPriorStats", "layout_prior_stats"]


@dataclass(frozen=True)
class LayoutPriorStats:
    """How well a point's (x, y) alone predicts its category on this corpus (no image).

    ``accuracy``: the k-NN vote of :mod:`owl_data.layout_prior` fitted on the ``train_points``
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


def _glob(corpus: Path, table: str) -> str | None:
    files = sorted((corpus / table).rglob("*.parquet"))
    return (corpus / table).as_posix() + "/**/*.parquet" if files else None


def corpus_stats(corpus: Path) -> dict[str, list[tuple]]:
    """Rows per task, split and source; rows per category (point_vqa); rejects per reason; the
    layout prior (:func:`layout_prior_stats`).

    Returns a dict of query name -> list of result tuples (each sorted); ``layout_prior`` holds
    one :class:`LayoutPriorStats` (none when the corpus has no point_vqa rows).

    Raises:
        FileNotFoundError: ``corpus`` is not a corpus (no manifest.json).
        SchemaError: a corpus of another schema major version.
    """
    from owl_data.corpus import read_manifest

    corpus = Path(corpus)
    read_manifest(corpus)  # FileNotFoundError / SchemaError when it is not a corpus
    con = duckdb.connect()
    out: dict[str, list] = {"rows": [], "categories": [], "kinds": [], "rejects": [], "layout_prior": []}
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
        out["layout_prior"] = [layout_prior_stats(corpus)]
    g = _glob(corpus, "rejects")
    if g is not None:
        out["rejects"] = con.execute(
            f"SELECT source, reason, count(*) FROM read_parquet('{g}') GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    con.close()
    return out
