"""Point-VQA grounding: does the answer follow *what is at the point*, or only *where* it is?

A hit rate alone cannot tell. On street scenes the sky is on top and the road at the bottom, so a
model that never looks at the image can name the right category from the point's (x, y). This
module scores a model's answers and runs four controls in the same pass, all through one
*answer function* (rows -> answers) so that the real model (:func:`owl_train.runner.answer_rows`)
and the stand-in models of the tests share the code.

Rows are trainer rows (:func:`owl_train.data.rows.corpus_rows`): ``id, image_id, image (PIL),
point (x, y), conversations, kind, target {category, ...}``; points are normalised to [0, 1] in the
stored upright image's frame (x right, y down). "Names" is :meth:`owl_train.data.lexicon.Lexicon.names`:
the category an answer names *first* is the target's (or a kind of it).

- **hit**: description rows whose answer names the target's category. Rows whose *question*
  names any category ("Is the person I am looking at ...") are left out (and counted: the answer
  could copy the word); so are rows whose target has no category. Reasoning rows are scored the
  same way but reported apart (``reasoning_hit``).
- **layout_prior**: a k-NN vote from (x, y) to category (:mod:`owl_data.corpus.layout_prior`, fitted on
  the train split's description points) scored on the same rows: what no look at all gives.
- **point_swap**: the same image and question, the point moved to the nearest target of another
  category on that image (:func:`point_swap_pairs`): share of answers naming the *new* target.
- **image_swap**: the question asked on *another* image at the point of that image's target that
  lies within :data:`SWAP_RADIUS` of the first per axis and has another category
  (:func:`image_swap_pairs`): share of answers naming the *second* image's target. A model that
  reads only (x, y) answers as before and misses.
- **blank**: the row on a same-size image of the image's mean colour (:func:`blank_image`): share
  naming the target (what the text and point alone give) and share naming the layout prior's
  prediction (``blank_layout_prior``: how much of the answer is the layout prior).

"Another category" means neither category is the other or a kind of it (so an answer that
named the first cannot count as naming the second).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Collection, Mapping, Sequence

import numpy as np
from PIL import Image

from owl_data.corpus.layout_prior import LayoutPrior, point_xy
from owl_train.data.lexicon import Lexicon

__all__ = ["AnswerFn", "ImagesFn", "Rate", "RowSelection", "GroundingReport", "SWAP_RADIUS", "question_text",
           "question_names_category", "select_rows", "point_swap_pairs", "image_swap_pairs", "blank_image",
           "grounding_eval"]

Row = Mapping[str, Any]
AnswerFn = Callable[[Sequence[Row]], Sequence[str | None]]
"""Rows (image, point, conversations) -> one answer per row (None: the row could not be asked)."""
ImagesFn = Callable[[Collection[str]], Mapping[str, Image.Image]]
"""Image ids -> their images (the image-swap partners that the evaluated rows do not carry)."""

SWAP_RADIUS = 1 / 32
"""Image swap: the partner's point lies within this distance of the row's per axis (normalised)."""

_PLACEHOLDERS = ("<image>", "<point>")


@dataclass(frozen=True)
class Rate:
    """``hits`` of ``n``; :attr:`rate` is None when ``n`` is 0."""

    hits: int
    n: int

    @property
    def rate(self) -> float | None:
        return self.hits / self.n if self.n else None


def question_text(row: Row) -> str:
    """The user text before the first answer, placeholders removed (``""`` when there is none)."""
    parts = []
    for t in row["conversations"]:
        if t["role"] == "assistant":
            break
        if t["role"] == "user":
            text = t["content"]
            for p in _PLACEHOLDERS:
                text = text.replace(p, " ")
            parts.append(text)
    return " ".join(" ".join(parts).split())


def question_names_category(row: Row, lexicon: Lexicon) -> bool:
    """The row's question names some category (so its answer could copy the word)."""
    return bool(lexicon.mentions(question_text(row)))


@dataclass(frozen=True)
class RowSelection:
    """Which rows the grounding figures use (positions into the rows given to :func:`select_rows`)."""

    description: tuple[int, ...]
    reasoning: tuple[int, ...]
    excluded_question_names_category: int
    excluded_no_category: int


def _category(row: Row) -> str:
    """The target's category, ``""`` when it has none (a null category is not the category "None")."""
    cat = row["target"]["category"]
    return "" if cat is None else str(cat).strip()


def select_rows(rows: Sequence[Row], lexicon: Lexicon) -> RowSelection:
    """Description and reasoning rows that count; those whose question names a category, or whose
    target has no category the lexicon knows (``""``; :meth:`Lexicon.with_categories` adds the
    corpus's others), are left out and counted (a row without a category counts only there)."""
    desc, reas, named, nocat = [], [], 0, 0
    for i, r in enumerate(rows):
        if not _category(r) or lexicon.resolve(_category(r)) is None:
            nocat += 1
        elif question_names_category(r, lexicon):
            named += 1
        elif r.get("kind") == "description":
            desc.append(i)
        elif r.get("kind") == "reasoning":
            reas.append(i)
    return RowSelection(tuple(desc), tuple(reas), named, nocat)


def _distinct(lexicon: Lexicon, a: str, b: str) -> bool:
    """Neither category is the other nor a kind of it."""
    return not (lexicon.names(a, b) or lexicon.names(b, a))


def _pool(pool: Sequence[Row], lexicon: Lexicon) -> list[tuple[str, float, float, str, Row]]:
    """Description rows with a lexicon category as (image_id, x, y, id, row), sorted (deterministic)."""
    out = []
    for r in pool:
        if r.get("kind") == "description" and _category(r) and lexicon.resolve(_category(r)) is not None:
            x, y = point_xy(r)
            out.append((str(r["image_id"]), x, y, str(r["id"]), r))
    return sorted(out, key=lambda t: t[:4])


def point_swap_pairs(rows: Sequence[Row], pool: Sequence[Row], lexicon: Lexicon) -> list[tuple[Row, Row]]:
    """(row, partner) for each row that has one: the partner is the pool's description row on the
    *same* image, of another category, whose point is nearest the row's (Euclidean, normalised);
    ties to the lower (x, y), then the lower row id. Rows without such a target are left out.
    """
    by_image: dict[str, list[tuple[str, float, float, str, Row]]] = {}
    for t in _pool(pool, lexicon):
        by_image.setdefault(t[0], []).append(t)
    out = []
    for r in rows:
        x, y = point_xy(r)
        cands = [(((px - x) ** 2 + (py - y) ** 2), px, py, pid, p) for _, px, py, pid, p in
                 by_image.get(str(r["image_id"]), []) if _distinct(lexicon, _category(r), _category(p))]
        if cands:
            out.append((r, min(cands, key=lambda c: c[:4])[4]))
    return out


def image_swap_pairs(rows: Sequence[Row], pool: Sequence[Row], lexicon: Lexicon,
                     radius: float = SWAP_RADIUS) -> list[tuple[Row, Row]]:
    """(row, partner) for each row that has one: the partner is the pool's description row on
    *another* image whose point lies within ``radius`` of the row's per axis (|dx| <= radius and
    |dy| <= radius, normalised) and whose category is another; the nearest (Euclidean), ties to the
    lower image id, then (x, y), then row id.
    """
    entries = _pool(pool, lexicon)
    xy = np.asarray([(t[1], t[2]) for t in entries], dtype=np.float64).reshape(-1, 2)
    out = []
    for r in rows:
        x, y = point_xy(r)
        near = np.flatnonzero((np.abs(xy[:, 0] - x) <= radius) & (np.abs(xy[:, 1] - y) <= radius))
        cands = [((px - x) ** 2 + (py - y) ** 2, iid, px, py, pid, p)
                 for iid, px, py, pid, p in (entries[i] for i in near)
                 if iid != str(r["image_id"]) and _distinct(lexicon, _category(r), _category(p))]
        if cands:
            out.append((r, min(cands, key=lambda c: c[:5])[5]))
    return out


def blank_image(image: Image.Image) -> Image.Image:
    """A same-size RGB image filled with ``image``'s mean colour (per channel, rounded)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3)
    mean = tuple(int(v) for v in np.round(rgb.mean(0))) if rgb.size else (0, 0, 0)
    return Image.new("RGB", image.size, mean)


@dataclass(frozen=True)
class GroundingReport:
    """The point-VQA figures of one evaluation (see the module doc); rates via :meth:`metrics`."""

    hit: Rate
    reasoning_hit: Rate
    excluded_question_names_category: int
    excluded_no_category: int
    layout_prior: Rate
    majority_baseline: Rate
    layout_prior_fit_points: int
    controls: bool
    point_swap: Rate
    image_swap: Rate
    image_swap_pairs: int
    blank: Rate
    blank_layout_prior: Rate

    def metrics(self) -> dict[str, float | int | bool | None]:
        """Flat figures for the eval report and its JSON: each rate (in [0, 1], None when its n is
        0) followed by ``<name>_n``, then the counts."""
        out: dict[str, float | int | bool | None] = {}
        for name in ("hit", "reasoning_hit", "layout_prior", "majority_baseline", "point_swap", "image_swap",
                     "blank", "blank_layout_prior"):
            r: Rate = getattr(self, name)
            out[name], out[f"{name}_n"] = r.rate, r.n
        out.update(excluded_question_names_category=self.excluded_question_names_category,
                   excluded_no_category=self.excluded_no_category,
                   layout_prior_fit_points=self.layout_prior_fit_points, image_swap_pairs=self.image_swap_pairs,
                   controls=self.controls)
        return out


def _rate(lexicon: Lexicon, answers: Sequence[str | None], categories: Sequence[str]) -> Rate:
    pairs = [(a, c) for a, c in zip(answers, categories) if a is not None]
    return Rate(sum(lexicon.names(a, c) for a, c in pairs), len(pairs))


def _probe(row: Row, image: Image.Image, at: Row) -> dict[str, Any]:
    """``row``'s question on ``image`` at the point of ``at`` (whose target it then asks about)."""
    return {**row, "image": image, "point": point_xy(at), "target": at["target"],
            "bbox": at["target"].get("bbox") if isinstance(at["target"], Mapping) else None}


def grounding_eval(rows: Sequence[Row], answer: AnswerFn, *, pool: Sequence[Row], lexicon: Lexicon,
                   prior: LayoutPrior | None, images: ImagesFn, answers: Sequence[str | None] | None = None,
                   controls: bool = True) -> GroundingReport:
    """Score ``rows`` and run the controls on their description rows that count.

    Args:
        rows: the evaluated point_vqa rows (with images).
        answer: rows -> answers; called once for ``rows`` (unless ``answers`` is given) and once
            for all control rows together.
        pool: the split's description rows (images not needed: ``id, image_id, kind, point,
            target``): where point-swap and image-swap partners are looked up.
        lexicon: which words name which category (extended with the corpus's categories).
        prior: the fitted layout prior (None: no train points; its figures get n = 0).
        images: image ids -> images, for image-swap partners on images no evaluated row carries.
        answers: answers already generated for ``rows`` (same order).
        controls: False skips the swaps and the blank image (their n is 0).
    """
    answers = list(answer(rows)) if answers is None else list(answers)
    if len(answers) != len(rows):
        raise ValueError(f"{len(answers)} answers for {len(rows)} rows")
    sel = select_rows(rows, lexicon)
    desc = [rows[i] for i in sel.description]
    desc_answers = [answers[i] for i in sel.description]
    hit = _rate(lexicon, desc_answers, [_category(r) for r in desc])
    reasoning = _rate(lexicon, [answers[i] for i in sel.reasoning], [_category(rows[i]) for i in sel.reasoning])
    layout, majority = _prior_rates(prior, [r for r, a in zip(desc, desc_answers) if a is not None])
    ctl = _run_controls(desc, answer, pool, lexicon, prior, images) if controls and desc else _Controls()
    return GroundingReport(
        hit=hit, reasoning_hit=reasoning, excluded_question_names_category=sel.excluded_question_names_category,
        excluded_no_category=sel.excluded_no_category, layout_prior=layout, majority_baseline=majority,
        layout_prior_fit_points=prior.n if prior is not None else 0, controls=controls, point_swap=ctl.point_swap,
        image_swap=ctl.image_swap, image_swap_pairs=ctl.image_swap_pairs, blank=ctl.blank,
        blank_layout_prior=ctl.blank_layout_prior)


def _prior_rates(prior: LayoutPrior | None, answered: Sequence[Row]) -> tuple[Rate, Rate]:
    """The layout prior's and the majority category's hit on the answered description rows
    (both n = 0 without a prior or rows)."""
    if prior is None or not answered:
        return Rate(0, 0), Rate(0, 0)
    cats = [_category(r) for r in answered]
    pred = prior.predict([point_xy(r) for r in answered])
    return (Rate(sum(p == c for p, c in zip(pred, cats)), len(cats)),
            Rate(sum(c == prior.majority for c in cats), len(cats)))


@dataclass(frozen=True)
class _Controls:
    """The controls' rates (all n = 0 when they are not run) and the image-swap pairs found."""

    point_swap: Rate = Rate(0, 0)
    image_swap: Rate = Rate(0, 0)
    image_swap_pairs: int = 0
    blank: Rate = Rate(0, 0)
    blank_layout_prior: Rate = Rate(0, 0)


def _control_images(have: Mapping[str, Image.Image], iswap: Sequence[tuple[Row, Row]], images: ImagesFn,
                    ) -> Mapping[str, Image.Image]:
    """The images by id that the controls ask on: the evaluated rows' own (``have``), plus the
    image-swap partners' fetched through ``images``.

    Raises:
        ValueError: ``images`` returned no image for a partner.
    """
    missing = sorted({str(p["image_id"]) for _, p in iswap} - set(have))
    imgs = {**dict(images(missing)), **have} if missing else have
    lost = [i for i in missing if i not in imgs]
    if lost:
        raise ValueError(f"images() returned no image for {len(lost)} image-swap partner(s), e.g. {lost[0]!r}")
    return imgs


def _run_controls(desc: Sequence[Row], answer: AnswerFn, pool: Sequence[Row], lexicon: Lexicon,
                  prior: LayoutPrior | None, images: ImagesFn) -> _Controls:
    """Point swap, image swap and blank image on the description rows ``desc``, answered in one
    call of ``answer`` (in that order).

    Raises:
        ValueError: ``answer`` gave another number of answers than control rows, or a partner's
            image is missing.
    """
    ps = point_swap_pairs(desc, pool, lexicon)
    iswap = image_swap_pairs(desc, pool, lexicon)
    have = {str(r["image_id"]): r["image"] for r in desc}
    imgs = _control_images(have, iswap, images)
    blanks = {iid: blank_image(im) for iid, im in have.items()}
    probes = ([_probe(r, r["image"], p) for r, p in ps]
              + [_probe(r, imgs[str(p["image_id"])], p) for r, p in iswap]
              + [{**r, "image": blanks[str(r["image_id"])]} for r in desc])
    got = list(answer(probes))
    if len(got) != len(probes):
        raise ValueError(f"{len(got)} answers for {len(probes)} control rows")
    a_ps, a_is, a_bl = got[:len(ps)], got[len(ps):len(ps) + len(iswap)], got[len(ps) + len(iswap):]
    return _Controls(
        point_swap=_rate(lexicon, a_ps, [_category(p) for _, p in ps]),
        image_swap=_rate(lexicon, a_is, [_category(p) for _, p in iswap]), image_swap_pairs=len(iswap),
        blank=_rate(lexicon, a_bl, [_category(r) for r in desc]),
        blank_layout_prior=(_rate(lexicon, a_bl, prior.predict([point_xy(r) for r in desc])) if prior is not None
                            else Rate(0, 0)))
