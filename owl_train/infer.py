"""``owl-train infer``: answer about the point a person looks at in one image.

The prompt is the user turn ``<image><point>`` + the question. Without a question, a model
folder with a stage-2 prompt encoder fills the question's place with its virtual tokens; a
model without one gets the bare ``<image><point>`` turn (the no-question descriptions of the
corpus taught stage 1 that form too). Points are normalised (x, y) in [0, 1] of the upright
image, or pixels of the file with ``pixels=True`` (converted as the corpus does: x / W, y / H).
"""

from __future__ import annotations

import json

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from PIL import Image, ImageOps

from owl_data.errors import require
from owl_train.data import DataConfig, smart_resize
from owl_train.data.config import FACTOR
from owl_train.runner import LoadedModel, answer_rows, load_model

__all__ = ["InferConfig", "parse_point", "load_image", "answer", "infer", "PickedPoint", "pick_points",
           "answer_picked"]


@dataclass(frozen=True)
class InferConfig:
    min_pixels: int = 56 * 56
    max_pixels: int = 28 * 28 * 256
    box_format: str = "qwen"
    max_new_tokens: int = 64

    def __post_init__(self) -> None:
        for name in ("min_pixels", "max_pixels", "max_new_tokens"):
            v = getattr(self, name)
            require(not isinstance(v, bool) and isinstance(v, int) and v >= 1, name, v, "use a positive integer",
                    what="infer field")
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"infer min_pixels={self.min_pixels} exceeds max_pixels={self.max_pixels}")


def parse_point(text: str, size: tuple[int, int], pixels: bool = False) -> tuple[float, float]:
    """``"X,Y"`` -> normalised (x, y); ``size`` is the image's (W, H).

    Raises:
        ValueError: not two numbers, or outside the image.
    """
    parts = text.replace(" ", "").split(",")
    try:
        x, y = (float(v) for v in parts)
    except ValueError:
        raise ValueError(f"--point {text!r} is invalid: use X,Y, e.g. 0.5,0.4 (or pixels with --pixels)") from None
    if pixels:
        x, y = x / size[0], y / size[1]
    if not (0 <= x <= 1 and 0 <= y <= 1):
        unit = "pixels inside the image" if pixels else "normalised values in [0, 1] (or pass --pixels)"
        raise ValueError(f"--point {text!r} is outside the image: use {unit}")
    return x, y


def load_image(path: str | Path) -> Image.Image:
    """Decode and turn upright (EXIF orientation applied once, as the corpus does at ingest)."""
    img = Image.open(path)
    img = ImageOps.exif_transpose(img)
    img.load()
    return img


def trained_image_budget(model_dir: str | Path) -> dict[str, Any]:
    """``min_pixels``/``max_pixels``/``box_format`` the model was trained with (its
    ``train_summary.json``), or {} for a model that has none (e.g. a fresh init-tiny)."""
    for cand in (Path(model_dir), Path(model_dir) / "model"):
        f = cand / "train_summary.json"
        if f.is_file():
            cfg = json.loads(f.read_text()).get("config", {})
            return {k: cfg[k] for k in ("min_pixels", "max_pixels", "box_format") if k in cfg}
    return {}


def answer(loaded: LoadedModel, image: Image.Image, points: Sequence[tuple[float, float]],
           question: str | None = None, cfg: InferConfig = InferConfig()) -> list[str]:
    """One answer per point (same image, same question).

    Raises:
        ValueError: the question holds a placeholder (give the question text only), or the image
            cannot be used (aspect ratio over 200, empty).
    """
    if question and any(tag in question for tag in ("<image>", "<point>", "<box>", "<|")):
        raise ValueError("--question takes the question text only (e.g. 'What colour is it?'): "
                         "the image and the point are added for you")
    content = "<image><point>" + (question.strip() if question else "")
    rows = [{"id": f"infer-{i}", "task": "point_vqa", "image": image, "point": p, "bbox": None,
             "conversations": [{"role": "user", "content": content}]} for i, p in enumerate(points)]
    dc = DataConfig(min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels, box_format=cfg.box_format,
                    max_length=1 << 20)
    smart_resize(image.height, image.width, FACTOR, cfg.min_pixels, cfg.max_pixels)  # a clear error for a bad image
    out = answer_rows(loaded, rows, dc, batch_size=len(rows), max_new_tokens=cfg.max_new_tokens)
    if any(a is None for a in out):  # never an empty answer for a prompt that was not asked
        raise ValueError("the image and point could not be encoded as a prompt (the data path dropped it)")
    return [str(a) for a in out]


def infer(model_dir: str | Path, image: str | Path, points: Sequence[str], question: str | None = None,
          pixels: bool = False, cfg: InferConfig = InferConfig()) -> list[tuple[tuple[float, float], str]]:
    """Load, parse the points, answer: ``[((x, y), answer)]``."""
    img = load_image(image)
    pts = [parse_point(p, img.size, pixels) for p in points]
    loaded = load_model(model_dir)
    return list(zip(pts, answer(loaded, img, pts, question, cfg)))


@dataclass(frozen=True)
class PickedPoint:
    """A point on an annotated target: (x, y) normalised in the stored upright image, x right, y down."""

    x: float
    y: float
    category: str
    instance: str
    image_id: str


def pick_points(corpus: str | Path, split: str = "val", n: int = 2) -> tuple[Image.Image, list[PickedPoint]]:
    """``n`` points on targets of ``n`` different categories of one image, taken from the annotations.

    The points are those of the corpus's point_vqa description rows (sampled inside each target's
    visible mask by the build), so each comes with its true category. The image is the first (by
    ``image_id``) of ``split`` with the most distinct categories; categories are taken object classes
    first (not ``PointConfig().stuff_categories``), larger targets first; one point per category.

    Raises:
        FileNotFoundError: ``corpus`` is not a corpus.
        ValueError: ``n`` < 1, a split that is not a split name, no description rows in ``split``
            (the message lists the corpus's splits), no image of ``split`` with ``n`` categories.
    """
    from owl_data.corpus.layout_prior import point_xy, read_description_rows
    from owl_data.ingest.points import PointConfig
    from owl_data.corpus.writer import MANIFEST, check_split, corpus_splits
    from owl_train.data.rows import corpus_images

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"pick n={n!r}: give a positive number of points")
    if not (Path(corpus) / MANIFEST).is_file():
        raise FileNotFoundError(f"{corpus} is not an Owl-VL corpus (no {MANIFEST})")
    check_split(split)
    stuff = set(PointConfig().stuff_categories)
    by_image: dict[str, dict[str, tuple[float, PickedPoint]]] = {}
    for r in read_description_rows(corpus, split):
        t = r["target"]
        cat = str(t.get("category") or "")
        if not cat:
            continue
        b = t.get("bbox") or [0.0, 0.0, 0.0, 0.0]
        area = max(0.0, (b[2] - b[0]) * (b[3] - b[1]))
        x, y = point_xy(r)
        p = PickedPoint(float(x), float(y), cat, str(t.get("instance") or ""), str(r["image_id"]))
        best = by_image.setdefault(p.image_id, {})
        if cat not in best or area > best[cat][0] or (area == best[cat][0] and (x, y) < (best[cat][1].x, best[cat][1].y)):
            best[cat] = (area, p)
    if not by_image:
        have = corpus_splits(corpus, ["point_vqa"])
        raise ValueError(f"{corpus} has no point_vqa description rows in split {split!r} "
                         f"(its point_vqa splits: {', '.join(have) or 'none'})")
    image_id = max(sorted(by_image), key=lambda i: len(by_image[i]))  # max keeps the first of equals
    cands = sorted(by_image[image_id].values(), key=lambda ap: (ap[1].category in stuff, -ap[0], ap[1].category))
    if len(cands) < n:
        raise ValueError(f"no image of split {split!r} has {n} annotated categories (at most {len(cands)})")
    img = corpus_images(corpus, [image_id]).get(image_id)
    if img is None:
        raise ValueError(f"{corpus}: image {image_id[:12]} of split {split!r} is not in its images table "
                         "(owl-data validate names what is wrong)")
    return img, [p for _, p in cands[:n]]


def answer_picked(model_dir: str | Path, corpus: str | Path, split: str = "val", n: int = 2,
                  cfg: InferConfig = InferConfig(), question: str | None = None,
                  ) -> list[tuple[PickedPoint, str, bool]]:
    """Answer about :func:`pick_points`' points: ``[(point, answer, names its true category)]``.

    "Names" is :meth:`owl_train.data.lexicon.Lexicon.names` (the first category the answer names is the
    point's, or a kind of it), the rule of ``owl-train eval``'s hit.
    """
    from owl_train.data.lexicon import load_lexicon

    img, pts = pick_points(corpus, split, n)
    loaded = load_model(model_dir)
    answers = answer(loaded, img, [(p.x, p.y) for p in pts], question, cfg)
    lex = load_lexicon().with_categories(p.category for p in pts)
    return [(p, a, lex.names(a, p.category)) for p, a in zip(pts, answers)]
