"""Per-task metrics of ``owl-train eval``: pure functions of answers and references.

- :func:`vqa_accuracy`: VQA accuracy by the VQA v2 rule (GT-Vision-Lab/VQA ``vqaEval.py``): the
  answer is normalised (:func:`vqa_normalize`: punctuation, digits, articles, contractions), the
  annotators' answers get the punctuation step when they disagree, and the score is
  min(#matching annotators / 3, 1) averaged over the leave-one-out subsets of the annotators.
- :func:`caption_scores`: BLEU-4 and CIDEr (pycocoevalcap's scorers). Texts are tokenised by
  pycocoevalcap's PTBTokenizer when ``java`` is on PATH, else by a plain tokenizer (lowercase,
  punctuation removed, split on whitespace); the result says which.
- :func:`box_iou`: IoU of two xyxy boxes.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from typing import Mapping, Sequence

__all__ = ["vqa_normalize", "vqa_accuracy", "CaptionScores", "caption_scores", "box_iou"]

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


@dataclass(frozen=True)
class CaptionScores:
    """BLEU-4 and CIDEr of ``n`` predictions (both None when ``n`` is 0); ``tokenizer`` names the
    tokenizer used (``"ptb"`` or ``"plain (java not found)"``; None when ``n`` is 0);
    ``cider_ceiling`` is the CIDEr an answer equal to each item's first reference would get on the
    same references (:func:`cider_note`). The field order is the eval report's key order."""

    bleu4: float | None
    cider: float | None
    n: int
    tokenizer: str | None
    cider_ceiling: float | None = None


CIDER_DEGENERATE = 0.5
"""A ``cider_ceiling`` below this means CIDEr cannot tell answers apart on these references."""


def cider_note(task: str, s: CaptionScores) -> str | None:
    """A note when CIDEr is degenerate on the evaluated references (None otherwise).

    CIDEr (Vedantam et al. 2015) weights each n-gram by its inverse document frequency over the
    *evaluated* images' references: on a handful of images, or on templated references whose
    n-grams every image shares, those weights are ~0 and even a perfect answer scores ~0.
    ``cider_ceiling`` (the CIDEr of answers equal to each image's first reference) shows it.
    """
    if s.cider_ceiling is None or s.cider_ceiling >= CIDER_DEGENERATE:
        return None
    return (f"{task}: CIDEr cannot rank answers here: an answer equal to a reference would score "
            f"{s.cider_ceiling:.2f} over these {s.n} references (CIDEr weights n-grams by their rarity among "
            "the evaluated references, and these share theirs: few or templated); read BLEU-4, or evaluate "
            "more rows with varied references")


def caption_scores(refs: Mapping[str, list[str]], preds: Mapping[str, str],
                   use_java: bool | None = None) -> CaptionScores:
    """BLEU-4 and CIDEr (pycocoevalcap) of ``preds`` against ``refs`` (``refs`` holds every key of ``preds``).

    ``use_java``: None detects ``java`` on PATH (pycocoevalcap's PTBTokenizer needs it).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    keys = sorted(preds)
    if not keys:
        return CaptionScores(None, None, 0, None)
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
    ceiling, _ = Cider().compute_score(gts, {k: [gts[k][0] or "<empty>"] for k in keys})
    return CaptionScores(float(bleu[3]), float(cider), len(keys), name, float(ceiling))


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two xyxy boxes (any consistent frame)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
