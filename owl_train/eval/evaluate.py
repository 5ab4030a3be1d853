"""``owl-train eval``: per-task metrics of a model folder on a corpus split.

- **vqa**: VQA accuracy by the VQA v2 rule (GT-Vision-Lab/VQA ``vqaEval.py``): the answer is
  normalised (punctuation, digits, articles, contractions), the annotators' answers get the
  punctuation step when they disagree, and the score is min(#matching annotators / 3, 1)
  averaged over the leave-one-out subsets of the annotators.
- **caption** and point-VQA **descriptions**: BLEU-4 and CIDEr (pycocoevalcap's scorers).
  References of a caption are all captions of its image; of a description, its own answer.
  Texts are tokenised by pycocoevalcap's PTBTokenizer when ``java`` is on PATH, else by a plain
  tokenizer (lowercase, punctuation removed, split on whitespace); the report says which.
- **grounding**: accuracy at IoU >= 0.5 of the first box parsed from the answer
  (:mod:`owl_data.conventions.coords`, the model's ``box_format``); no parsable box counts as a miss.
- **point_vqa**: description BLEU-4 and CIDEr (above), and the grounding figures of
  :mod:`owl_train.eval.grounding`: ``hit`` (the category the answer names *first*, by the category
  lexicon of :mod:`owl_train.data.lexicon`, is the target's; rows whose question names a category are
  left out and counted), ``reasoning_hit`` apart, and the controls computed in the same run
  (``layout_prior``, ``point_swap``, ``image_swap``, ``blank``), each with its ``_n``.

The metrics are :mod:`owl_train.eval.metrics`; the model answers through :mod:`owl_train.runner`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from owl_data.conventions.coords import CoordError, restore_text
from owl_data.errors import require
from owl_data.corpus.schema import TASK_ORDER
from owl_data.corpus.layout_prior import LayoutPrior, fit_layout_prior, read_description_rows
from owl_train.data import DataConfig
from owl_train.data.lexicon import load_lexicon
from owl_train.data.rows import corpus_images, corpus_rows, is_stage2_row
from owl_train.eval.grounding import grounding_eval
from owl_train.eval.metrics import box_iou, caption_scores, cider_note, vqa_accuracy
from owl_train.runner import LoadedModel, answer_rows, load_model

__all__ = ["EvalConfig", "EvalReport", "grounding_metrics", "evaluate", "TASKS"]

TASKS = TASK_ORDER  # the paper's ratio order (owl_data.corpus.schema)


@dataclass(frozen=True)
class EvalConfig:
    split: str = "val"
    limit: int = 64  # rows per task (0: all)
    batch_size: int = 8
    max_new_tokens: int = 48
    min_pixels: int = 56 * 56
    max_pixels: int = 28 * 28 * 256
    box_format: str = "qwen"
    tasks: tuple[str, ...] = TASKS
    use_java: bool | None = None
    controls: bool = True  # point_vqa: also the point-swap, image-swap and blank-image controls

    def __post_init__(self) -> None:
        from owl_data.corpus.writer import check_split

        bad = [t for t in self.tasks if t not in TASKS]
        if bad:
            raise ValueError(f"eval tasks {bad} are unknown: use some of {', '.join(TASKS)}")
        if not self.tasks:
            raise ValueError(f"eval tasks: name at least one of {', '.join(TASKS)}")
        object.__setattr__(self, "tasks", tuple(dict.fromkeys(self.tasks)))  # each task once
        check_split(self.split)
        for name in ("batch_size", "max_new_tokens"):
            require(getattr(self, name) >= 1, name, getattr(self, name), "use a positive integer", what="eval field")
        require(self.limit >= 0, "limit", self.limit, "use 0 (all rows) or a positive count", what="eval field")


@dataclass
class EvalReport:
    split: str
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)


def _layout_prior(corpus: str | Path, split: str, notes: list[str]) -> LayoutPrior | None:
    """The layout prior fitted on the train split's description points (None, with a note, if none)."""
    try:
        prior = fit_layout_prior(read_description_rows(corpus, "train"))
    except ValueError:
        notes.append("point_vqa: no train description rows: the layout prior is not computed")
        return None
    if split == "train":
        notes.append("point_vqa: evaluated on the train split, which the layout prior is fitted on")
    return prior


def grounding_metrics(loaded: LoadedModel, corpus: str | Path, rows: list[dict[str, Any]],
                      preds: list[str | None] | None, data_cfg: DataConfig, cfg: EvalConfig,
                      notes: list[str]) -> dict[str, Any]:
    """The grounding figures and controls of :mod:`owl_train.eval.grounding` for point_vqa ``rows`` of
    ``cfg.split`` (trainer rows with images); ``preds``: their answers when already generated
    (None: generated here). The layout prior is fitted on the train split; notes go to ``notes``.
    ``benchmarks/point_bench.py`` calls this too, so its figures are eval's."""
    pool = read_description_rows(corpus, cfg.split)
    lexicon = load_lexicon().with_categories(str(r["target"]["category"] or "") for r in [*rows, *pool])

    def answer(rs: Sequence[Mapping[str, Any]]) -> list[str | None]:
        return answer_rows(loaded, rs, data_cfg, batch_size=cfg.batch_size, max_new_tokens=cfg.max_new_tokens)

    rep = grounding_eval(rows, answer, pool=pool, lexicon=lexicon, prior=_layout_prior(corpus, cfg.split, notes),
                         images=lambda ids: corpus_images(corpus, ids), answers=preds, controls=cfg.controls)
    return rep.metrics()


@dataclass(frozen=True)
class _Run:
    """What every task's scoring reads: the loaded model, the corpus, the settings; ``notes`` is the
    report's list (scorers append to it)."""

    loaded: LoadedModel
    corpus: str | Path
    cfg: EvalConfig
    data_cfg: DataConfig
    notes: list[str]


Row = dict[str, Any]
Pairs = list[tuple[Row, str]]
Scorer = Callable[[_Run, list[Row], list[str | None]], dict[str, Any]]
"""(run, the task's rows, their answers (None: dropped)) -> the task's figures after ``rows``/``answered``."""


def _answered(rows: list[Row], preds: list[str | None]) -> Pairs:
    """(row, answer) for the rows that were answered."""
    return [(r, p) for r, p in zip(rows, preds) if p is not None]


def _reference(row: Mapping[str, Any]) -> str:
    """The row's first assistant turn (its reference answer)."""
    return next(t["content"] for t in row["conversations"] if t["role"] == "assistant")


def _score_vqa(run: _Run, rows: list[Row], preds: list[str | None]) -> dict[str, Any]:
    """``accuracy``: mean VQA accuracy of the answered rows against their annotators' answers."""
    pairs = _answered(rows, preds)
    return {"accuracy": sum(vqa_accuracy(p, r.get("answers") or []) for r, p in pairs) / max(1, len(pairs))}


def _score_caption(run: _Run, rows: list[Row], preds: list[str | None]) -> dict[str, Any]:
    """BLEU-4/CIDEr per image: the references are all captions of the image in the split."""
    refs: dict[str, list[str]] = defaultdict(list)
    for r in corpus_rows(run.corpus, "caption", run.cfg.split):
        refs[r["image_id"]].append(_reference(r))
    by_img = {r["image_id"]: p for r, p in _answered(rows, preds)}
    s = caption_scores(refs, by_img, run.cfg.use_java)
    if cider_note("caption", s):
        run.notes.append(cider_note("caption", s))
    return asdict(s)


def _score_grounding(run: _Run, rows: list[Row], preds: list[str | None]) -> dict[str, Any]:
    """``acc@0.5``: the first box parsed from the answer (model's box format) has IoU >= 0.5 with
    the row's box; an answer with no parsable box is a miss."""
    pairs = _answered(rows, preds)
    hits = with_box = 0
    for r, p in pairs:
        try:
            _, _, boxes = restore_text(p, run.cfg.box_format)
        except CoordError:
            boxes = []
        hits += bool(boxes) and box_iou(boxes[0][0], r["bbox"]) >= 0.5
        with_box += bool(boxes)
    if pairs and not hits:
        run.notes.append(f"grounding: acc@0.5 is 0: {with_box} of {len(pairs)} answers hold a box in the "
                         f"{run.cfg.box_format} format" + ("; the model has not learnt to answer with boxes "
                                                           "(a tiny or briefly trained model)" if not with_box else ""))
    return {"acc@0.5": hits / max(1, len(pairs))}


def _score_point_vqa(run: _Run, rows: list[Row], preds: list[str | None]) -> dict[str, Any]:
    """The grounding figures (:func:`grounding_metrics`), then the descriptions' BLEU-4/CIDEr against
    their own answers and the count of answered rows without a question."""
    m = grounding_metrics(run.loaded, run.corpus, rows, preds, run.data_cfg, run.cfg, run.notes)
    pairs = _answered(rows, preds)
    desc = [(r, p) for r, p in pairs if r.get("kind") == "description"]
    s = caption_scores({r["id"]: [_reference(r)] for r, _ in desc}, {r["id"]: p for r, p in desc}, run.cfg.use_java)
    m.update({"description_bleu4": s.bleu4, "description_cider": s.cider, "descriptions": s.n,
              "tokenizer": s.tokenizer})
    if cider_note("point_vqa descriptions", s):
        run.notes.append(cider_note("point_vqa descriptions", s))
    m["no_question_rows"] = sum(is_stage2_row(r["conversations"], r.get("kind")) for r, _ in pairs)
    return m


_SCORERS: dict[str, Scorer] = {"vqa": _score_vqa, "caption": _score_caption, "grounding": _score_grounding,
                               "point_vqa": _score_point_vqa}

_JAVA_NOTE = ("java not found: BLEU/CIDEr use a plain lowercase/punctuation tokenizer, "
              "not pycocoevalcap's PTBTokenizer (scores differ slightly from the official ones)")


def _check_corpus(corpus: str | Path, split: str) -> None:
    """Raise before the model loads: ``corpus`` is no corpus, or ``split`` is a split of none of its tasks."""
    from owl_data.corpus.writer import MANIFEST, corpus_splits

    if not (Path(corpus) / MANIFEST).is_file():
        raise FileNotFoundError(f"{corpus} is not an Owl-VL corpus (no {MANIFEST})")
    have = corpus_splits(corpus)
    if split not in have:  # a typo is an error, not an empty report
        raise ValueError(f"split {split!r} is not in corpus {corpus} (its splits: {', '.join(have) or 'none'})")


def evaluate(model_dir: str | Path, corpus: str | Path, cfg: EvalConfig = EvalConfig(),
             progress: Callable[[str], None] = lambda s: None) -> EvalReport:
    """Generate answers for ``cfg.limit`` rows per task of ``cfg.split`` and score them.

    Raises:
        FileNotFoundError: ``corpus`` is not a corpus.
        ValueError: ``cfg.split`` is a split of no task of the corpus (the message lists its splits;
            a split that only some of ``cfg.tasks`` lack gets a note per task instead).
    """
    _check_corpus(corpus, cfg.split)
    report = EvalReport(split=cfg.split)
    data_cfg = DataConfig(min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels, box_format=cfg.box_format,
                          max_length=1 << 20)
    run = _Run(load_model(model_dir), corpus, cfg, data_cfg, report.notes)
    for task in cfg.tasks:
        rows = corpus_rows(corpus, task, cfg.split, limit=cfg.limit or None)
        if not rows:
            report.notes.append(f"{task}: no rows in split {cfg.split!r}")
            continue
        progress(f"{task}: {len(rows)} rows")
        preds = answer_rows(run.loaded, rows, data_cfg, batch_size=cfg.batch_size, max_new_tokens=cfg.max_new_tokens)
        pairs = _answered(rows, preds)
        m: dict[str, Any] = {"rows": len(rows), "answered": len(pairs), **_SCORERS[task](run, rows, preds)}
        tok = m.get("tokenizer")
        if tok and "java" in str(tok) and not any("java" in n for n in report.notes):
            report.notes.append(_JAVA_NOTE)
        report.metrics[task] = m
        report.examples[task] = [{"id": r["id"], "answer": p} for r, p in pairs[:3]]
    return report
