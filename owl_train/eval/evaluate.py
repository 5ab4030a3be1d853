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
  lexicon of :mod:`owl_train.eval.lexicon`, is the target's; rows whose question names a category are
  left out and counted), ``reasoning_hit`` apart, and the controls computed in the same run
  (``layout_prior``, ``point_swap``, ``image_swap``, ``blank``), each with its ``_n``.

:func:`heldout_loss` gives the mean LM loss of a model on rows (stage-2 acceptance).
"""

from __future__ import annotations

import io
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from PIL import Image

from owl_data.conventions.coords import CoordError, restore_text
from owl_data.corpus.layout_prior import LayoutPrior, fit_layout_prior, read_description_rows
from owl_train.data import Collator, DataConfig, data_config_for_model
from owl_train.eval.grounding import grounding_eval
from owl_train.eval.lexicon import load_lexicon
from owl_train.stages.checkpoints import LoadedModel, load_model_dir
from owl_train.stages.module import BATCH_TENSORS, TrainModule
from owl_train.stages.ptuning import generate_batch
from owl_train.data.rows import corpus_rows, is_stage2_row

__all__ = ["EvalConfig", "EvalReport", "vqa_normalize", "vqa_accuracy", "caption_scores", "box_iou",
           "heldout_loss", "answer_rows", "corpus_images", "grounding_metrics", "evaluate"]

TASKS = ("vqa", "caption", "grounding", "point_vqa")

# GT-Vision-Lab/VQA PythonEvaluationTools/vqaEvaluation/vqaEval.py
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's",
    "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd", "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've", "somebodyll": "somebody'll", "somebodys": "somebody's",
    "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas",
    "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't",
    "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}
_MANUAL_MAP = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
               "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: the official pattern (a lookahead, not lookbehind)
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
_PUNCT = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]


def _punctuation(text: str) -> str:
    out = text
    for p in _PUNCT:
        if (p + " " in text or " " + p in text) or _COMMA_STRIP.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out)


def _digit_article(text: str) -> str:
    words = [_MANUAL_MAP.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in _ARTICLES]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words)


def vqa_normalize(answer: str) -> str:
    """The official normalisation of a predicted answer."""
    return _digit_article(_punctuation(answer.replace("\n", " ").replace("\t", " ").strip()))


def vqa_accuracy(pred: str, answers: Sequence[str]) -> float:
    """VQA v2 accuracy of ``pred`` against the annotators' ``answers`` (usually 10), in [0, 1]."""
    if not answers:
        return 0.0
    res = vqa_normalize(pred)
    gts = [a.replace("\n", " ").replace("\t", " ").strip() for a in answers]
    if len(set(gts)) > 1:
        gts = [_punctuation(a) for a in gts]
    accs = []
    for i in range(len(gts)):
        matches = sum(1 for j, a in enumerate(gts) if j != i and a == res)
        accs.append(min(1.0, matches / 3))
    return sum(accs) / len(accs)


def _plain_tokenize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def caption_scores(refs: Mapping[str, list[str]], preds: Mapping[str, str],
                   use_java: bool | None = None) -> dict[str, Any]:
    """BLEU-4 and CIDEr (pycocoevalcap) of ``preds`` against ``refs`` (same keys).

    ``use_java``: None detects ``java`` on PATH (pycocoevalcap's PTBTokenizer needs it).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    keys = sorted(preds)
    if not keys:
        return {"bleu4": None, "cider": None, "n": 0, "tokenizer": None}
    java = shutil.which("java") is not None if use_java is None else use_java
    if java:
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        tok = PTBTokenizer()
        gts = tok.tokenize({k: [{"caption": r} for r in refs[k]] for k in keys})
        res = tok.tokenize({k: [{"caption": preds[k]}] for k in keys})
        name = "ptb"
    else:
        gts = {k: [_plain_tokenize(r) for r in refs[k]] for k in keys}
        res = {k: [_plain_tokenize(preds[k])] for k in keys}
        name = "plain (java not found)"
    res = {k: [v[0] if v[0] else "<empty>"] for k, v in res.items()}  # the scorers reject empty hypotheses
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    return {"bleu4": float(bleu[3]), "cider": float(cider), "n": len(keys), "tokenizer": name}


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two xyxy boxes (any consistent frame)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


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
            if getattr(self, name) < 1:
                raise ValueError(f"eval field {name}={getattr(self, name)!r} is invalid: use a positive integer")
        if self.limit < 0:
            raise ValueError(f"eval field limit={self.limit!r} is invalid: use 0 (all rows) or a positive count")


@dataclass
class EvalReport:
    split: str
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)


def _prompt_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row up to its first assistant turn (what the model is asked)."""
    turns = []
    for t in row["conversations"]:
        if t["role"] == "assistant":
            break
        turns.append(t)
    return {**row, "conversations": turns}


def answer_rows(loaded: LoadedModel, rows: Sequence[Mapping[str, Any]], data_cfg: DataConfig, *,
                batch_size: int = 8, max_new_tokens: int = 48, use_cache: bool = True) -> list[str | None]:
    """Greedy answers to each row's first user turn (None for a row the collator drops).

    Stage-2 virtual tokens are used when the model has a prompt encoder and the turn has no question.
    """
    n_virtual = loaded.prompt.num_virtual_tokens if loaded.prompt is not None else 0
    cfg = data_config_for_model(DataConfig(**{**data_cfg.__dict__, "num_virtual_tokens": n_virtual,
                                              "padding_side": "left"}), loaded.model.config)
    coll = Collator(loaded.tokenizer, cfg)
    eos = loaded.model.config.text.eos_token_id
    device = next(loaded.model.parameters()).device
    out: list[str | None] = []
    for i in range(0, len(rows), batch_size):
        chunk = rows[i:i + batch_size]
        enc = [coll.encode(_prompt_row(r), add_generation_prompt=True) for r in chunk]
        keep = [e for e in enc if e is not None]
        answers: list[str] = []
        if keep:
            b = coll(keep)
            b = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in b.items()}
            new = generate_batch(loaded.model, b, loaded.prompt, max_new_tokens=max_new_tokens, eos_token_id=eos,
                                 pad_token_id=coll.special.pad, use_cache=use_cache)
            for seq in new.tolist():
                if eos is not None and eos in seq:
                    seq = seq[:seq.index(eos)]
                answers.append(loaded.tokenizer.decode(seq, skip_special_tokens=False).strip())
        it = iter(answers)
        out += [next(it) if e is not None else None for e in enc]
    return out


@torch.no_grad()
def heldout_loss(loaded: LoadedModel, rows: Sequence[Mapping[str, Any]], data_cfg: DataConfig,
                 batch_size: int = 8) -> float:
    """Mean next-token loss per supervised token over ``rows`` (virtual tokens when a prompt encoder exists)."""
    n_virtual = loaded.prompt.num_virtual_tokens if loaded.prompt is not None else 0
    coll = Collator(loaded.tokenizer, data_config_for_model(
        DataConfig(**{**data_cfg.__dict__, "num_virtual_tokens": n_virtual}), loaded.model.config))
    module = TrainModule(loaded.model, loaded.prompt).eval()
    total, count = 0.0, 0
    for i in range(0, len(rows), batch_size):
        b = coll(list(rows[i:i + batch_size]))
        if b["input_ids"].shape[0] == 0:
            continue
        n = int((b["labels"][:, 1:] != -100).sum())
        total += float(module(**{k: b[k] for k in BATCH_TENSORS})) * n
        count += n
    if not count:
        raise ValueError("no supervised tokens in the held-out rows")
    return total / count


def corpus_images(corpus: str | Path, ids: Collection[str]) -> dict[str, Image.Image]:
    """The decoded images of ``ids`` from the corpus's images table (ids it lacks are absent)."""
    want = pa.array(sorted(set(ids)), pa.string())
    out: dict[str, Image.Image] = {}
    if not len(want):
        return out
    for f in sorted((Path(corpus) / "images").glob("*.parquet")):
        sel = pc.is_in(pq.read_table(f, columns=["image_id"]).column("image_id"), value_set=want)
        if not pc.any(sel).as_py():
            continue
        t = pq.read_table(f, columns=["image_id", "bytes"]).filter(sel)
        for iid, blob in zip(t.column("image_id").to_pylist(), t.column("bytes").to_pylist()):
            img = Image.open(io.BytesIO(blob))
            img.load()
            out[iid] = img
    return out


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


def evaluate(model_dir: str | Path, corpus: str | Path, cfg: EvalConfig = EvalConfig(),
             progress: Callable[[str], None] = lambda s: None) -> EvalReport:
    """Generate answers for ``cfg.limit`` rows per task of ``cfg.split`` and score them.

    Raises:
        FileNotFoundError: ``corpus`` is not a corpus.
        ValueError: ``cfg.split`` is a split of no task of the corpus (the message lists its splits;
            a split that only some of ``cfg.tasks`` lack gets a note per task instead).
    """
    from owl_data.corpus.writer import MANIFEST, corpus_splits

    if not (Path(corpus) / MANIFEST).is_file():
        raise FileNotFoundError(f"{corpus} is not an Owl-VL corpus (no {MANIFEST})")
    have = corpus_splits(corpus)
    if cfg.split not in have:  # before the model loads: a typo is an error, not an empty report
        raise ValueError(f"split {cfg.split!r} is not in corpus {corpus} (its splits: {', '.join(have) or 'none'})")
    loaded = load_model_dir(model_dir)
    loaded.model.eval()
    data_cfg = DataConfig(min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels, box_format=cfg.box_format,
                          max_length=1 << 20)
    report = EvalReport(split=cfg.split)
    limit = cfg.limit or None
    for task in cfg.tasks:
        rows = corpus_rows(corpus, task, cfg.split, limit=limit)
        if not rows:
            report.notes.append(f"{task}: no rows in split {cfg.split!r}")
            continue
        progress(f"{task}: {len(rows)} rows")
        preds = answer_rows(loaded, rows, data_cfg, batch_size=cfg.batch_size, max_new_tokens=cfg.max_new_tokens)
        pairs = [(r, p) for r, p in zip(rows, preds) if p is not None]
        m: dict[str, Any] = {"rows": len(rows), "answered": len(pairs)}
        if task == "vqa":
            m["accuracy"] = sum(vqa_accuracy(p, r.get("answers") or []) for r, p in pairs) / max(1, len(pairs))
        elif task == "caption":
            refs: dict[str, list[str]] = defaultdict(list)
            for r in corpus_rows(corpus, task, cfg.split):
                refs[r["image_id"]].append(next(t["content"] for t in r["conversations"] if t["role"] == "assistant"))
            by_img = {r["image_id"]: p for r, p in pairs}
            m.update(caption_scores(refs, by_img, cfg.use_java))
        elif task == "grounding":
            hits = 0
            for r, p in pairs:
                try:
                    _, _, boxes = restore_text(p, cfg.box_format)
                except CoordError:
                    boxes = []
                hits += bool(boxes) and box_iou(boxes[0][0], r["bbox"]) >= 0.5
            m["acc@0.5"] = hits / max(1, len(pairs))
        else:
            m.update(grounding_metrics(loaded, corpus, rows, preds, data_cfg, cfg, report.notes))
            desc = [(r, p) for r, p in pairs if r.get("kind") == "description"]
            refs = {r["id"]: [next(t["content"] for t in r["conversations"] if t["role"] == "assistant")]
                    for r, _ in desc}
            s = caption_scores(refs, {r["id"]: p for r, p in desc}, cfg.use_java)
            m.update({"description_bleu4": s["bleu4"], "description_cider": s["cider"], "descriptions": s["n"],
                      "tokenizer": s["tokenizer"]})
            m["no_question_rows"] = sum(is_stage2_row(r["conversations"], r.get("kind")) for r, _ in pairs)
        tok = m.get("tokenizer")
        if tok and "java" in str(tok) and not any("java" in n for n in report.notes):
            report.notes.append("java not found: BLEU/CIDEr use a plain lowercase/punctuation tokenizer, "
                                "not pycocoevalcap's PTBTokenizer (scores differ slightly from the official ones)")
        report.metrics[task] = m
        report.examples[task] = [{"id": r["id"], "answer": p} for r, p in pairs[:3]]
    return report
