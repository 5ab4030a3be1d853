"""The layout prior: how well a point's (x, y) alone predicts its target's category.

A model that answers from *where* a point is, not from *what is there*, can score well on a
corpus whose categories sit at fixed places (sky on top, road at the bottom). This module
measures that shortcut with no image at all: a k-nearest-neighbour vote from the normalised
point (x, y) to the category, fitted on the train split and scored on another split. Both
``owl-data stats`` and ``owl-train eval`` call it, so the figure a user sees for their corpus
and the control beside a model's hit rate are the same computation.

Conventions: points are normalised to [0, 1] in the stored upright image's frame, x right,
y down (DESIGN.md, "Geometry is data"); distances are Euclidean in that unit square (a frame's
aspect ratio is not applied: the model sees the point in the same normalised frame).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    from owl_data.corpus.read import CorpusReader

__all__ = ["knn_vote", "LayoutPrior", "fit_layout_prior", "description_pairs", "point_xy",
           "read_description_rows", "DEFAULT_K"]

DEFAULT_K = 15


def knn_vote(train_xy: np.ndarray, train_labels: np.ndarray, query_xy: np.ndarray, k: int = DEFAULT_K,
             n_classes: int | None = None, chunk: int = 4096) -> np.ndarray:
    """Majority vote of the ``k`` nearest training points of each query.

    Args:
        train_xy: (N, 2) float points (x, y) in [0, 1].
        train_labels: (N,) int class indices in [0, n_classes).
        query_xy: (M, 2) float points.
        k: neighbours per query (uses min(k, N)); nearest by Euclidean distance, distance ties
            broken by the lower training index (a stable sort), so the result is deterministic.
        n_classes: number of classes (default: max label + 1).
        chunk: queries per block (bounds memory at chunk x N distances).

    Returns:
        (M,) int64 predicted class per query; vote ties go to the lowest class index.

    Raises:
        ValueError: empty training set, mismatched lengths, k < 1, or arrays of the wrong shape.

    Worked example (pinned by tests/owl_data/corpus/test_layout_prior.py): four training points at
    distance 0.5 from the centre, labels 2, 0, 1, 1::

        train (0, .5)->2  (1, .5)->0  (.5, 0)->1  (.5, 1)->1;  query (.5, .5)
        k=1: index 0 (a four-way distance tie: the lowest index)          -> 2
        k=2: labels {2, 0}: a vote tie                                    -> 0
        k=4: labels {2, 0, 1, 1}                                          -> 1
        query (0, .5), k=2: index 0 (distance 0), then (.5, 0) and (.5, 1) tie at 0.5:
             index 2 -> labels {2, 1}: a vote tie                         -> 1
    """
    train_xy = np.asarray(train_xy, dtype=np.float64)
    query_xy = np.asarray(query_xy, dtype=np.float64)
    train_labels = np.asarray(train_labels, dtype=np.int64)
    if train_xy.ndim != 2 or train_xy.shape[1] != 2 or query_xy.ndim != 2 or query_xy.shape[1] != 2:
        raise ValueError(f"points must be (N, 2) arrays; got {train_xy.shape} and {query_xy.shape}")
    if train_labels.shape != (train_xy.shape[0],):
        raise ValueError(f"train_labels has shape {train_labels.shape}, expected ({train_xy.shape[0]},)")
    if train_xy.shape[0] == 0:
        raise ValueError("the layout prior needs at least one training point")
    if k < 1:
        raise ValueError(f"k={k!r} must be >= 1")
    if train_labels.min() < 0:
        raise ValueError("class indices must be >= 0")
    n_classes = int(train_labels.max()) + 1 if n_classes is None else int(n_classes)
    kk = min(k, train_xy.shape[0])
    out = np.empty(query_xy.shape[0], dtype=np.int64)
    for i in range(0, query_xy.shape[0], chunk):
        q = query_xy[i:i + chunk]
        d = ((q[:, None, :] - train_xy[None, :, :]) ** 2).sum(-1)  # (m, N)
        nn = np.argsort(d, axis=1, kind="stable")[:, :kk]  # (m, kk)
        votes = np.zeros((q.shape[0], n_classes), dtype=np.int64)
        np.add.at(votes, (np.repeat(np.arange(q.shape[0]), kk), train_labels[nn].reshape(-1)), 1)
        out[i:i + chunk] = votes.argmax(1)  # argmax returns the first maximum: the lowest index
    return out


class LayoutPrior:
    """A fitted (x, y) -> category k-NN vote.

    ``categories`` is the sorted list of the training categories; class index i is
    ``categories[i]`` (so "ties to the lowest category index" means alphabetical order).
    """

    def __init__(self, xy: np.ndarray, categories: Sequence[str], k: int = DEFAULT_K) -> None:
        self.categories = sorted(set(categories))
        if not self.categories:
            raise ValueError("the layout prior needs at least one training point")
        self._index = {c: i for i, c in enumerate(self.categories)}
        self.xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        self.labels = np.asarray([self._index[c] for c in categories], dtype=np.int64)
        self.k = k

    @property
    def n(self) -> int:
        """Training points."""
        return int(self.xy.shape[0])

    @property
    def majority(self) -> str:
        """The most frequent training category (ties to the lowest index): the no-look baseline."""
        return self.categories[int(np.bincount(self.labels, minlength=len(self.categories)).argmax())]

    def majority_accuracy(self, categories: Sequence[str]) -> float | None:
        """Share of ``categories`` equal to :attr:`majority` (None when empty)."""
        if not len(categories):
            return None
        return float(np.mean([c == self.majority for c in categories]))

    def predict(self, xy: np.ndarray | Sequence[Sequence[float]]) -> list[str]:
        """(M, 2) points -> M predicted category names."""
        q = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if q.shape[0] == 0:
            return []
        pred = knn_vote(self.xy, self.labels, q, self.k, n_classes=len(self.categories))
        return [self.categories[i] for i in pred]

    def accuracy(self, xy: np.ndarray | Sequence[Sequence[float]], categories: Sequence[str]) -> float | None:
        """Share of points whose predicted category equals the given one (None when empty)."""
        pred = self.predict(xy)
        if not pred:
            return None
        return float(np.mean([p == c for p, c in zip(pred, categories)]))


def point_xy(row: Mapping[str, Any]) -> tuple[float, float]:
    """A row's point as (x, y): the corpus's ``{"x", "y"}`` struct or a trainer row's ``(x, y)``."""
    p = row["point"]
    if isinstance(p, Mapping):
        return float(p["x"]), float(p["y"])
    x, y = p
    return float(x), float(y)


def description_pairs(rows: Iterable[Mapping[str, Any]]) -> tuple[np.ndarray, list[str]]:
    """The distinct (image, point) pairs of point_vqa *description* rows: ((N, 2) xy, N categories).

    A point asked twice (with and without a question) counts once, so the prior is not weighted
    by how many rows a point made; rows without a category (``""`` or null) are skipped. Order: sorted by
    (image_id, x, y), deterministic. Points may be ``{"x", "y"}`` structs or ``(x, y)`` pairs.
    """
    seen: dict[tuple[str, float, float], str] = {}
    for r in rows:
        cat = r["target"]["category"]
        if r.get("kind") != "description" or cat is None or not str(cat).strip():
            continue  # a null category is no category (not the category "None")
        x, y = point_xy(r)
        seen.setdefault((str(r["image_id"]), x, y), str(cat))
    keys = sorted(seen)
    xy = np.asarray([(x, y) for _, x, y in keys], dtype=np.float64).reshape(-1, 2)
    return xy, [seen[k] for k in keys]


def fit_layout_prior(train_rows: Iterable[Mapping[str, Any]], k: int = DEFAULT_K) -> LayoutPrior:
    """Fit on the distinct (image, point) pairs of the train split's description rows.

    Raises:
        ValueError: no description rows.
    """
    xy, cats = description_pairs(train_rows)
    if not cats:
        raise ValueError("no point_vqa description rows to fit the layout prior on")
    return LayoutPrior(xy, cats, k)


_COLUMNS = ["id", "image_id", "kind", "point", "target"]


def read_description_rows(corpus: str | Path | CorpusReader, split: str) -> list[dict[str, Any]]:
    """The point_vqa description rows of ``split`` without images: ``id, image_id, kind, point
    {x, y}, target {category, instance, bbox}`` (shard then row order); [] when the split has none.

    Raises:
        ValueError: ``split`` is not a split name (a path such as ``../images``).
        DamagedShardError / CorpusChangedError: a shard that differs from the manifest's hash
            (:mod:`owl_data.corpus.read`; FileNotFoundError: no manifest).
    """
    from owl_data.corpus.read import as_reader
    from owl_data.corpus.writer import check_split

    reader = as_reader(corpus)
    rows: list[dict[str, Any]] = []
    for rel in reader.files(f"point_vqa/{check_split(split)}"):
        rows += [r for r in reader.read_table(rel, columns=_COLUMNS).to_pylist() if r["kind"] == "description"]
    return rows
