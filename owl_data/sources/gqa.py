"""Reader for GQA questions (``gqa=DIR``).

Format (cs.stanford.edu/people/dorarad/gqa, "Questions"): a JSON object
``{question_id: {imageId, question, answer, fullAnswer, ...}}`` per file
(``train_balanced_questions.json``, ``val_balanced_questions.json``,
``testdev_balanced_questions.json``, ``train_all_questions/train_all_questions_<k>.json``);
images ``images/<imageId>.jpg``.

Spec: ``DIR[?questions=FILE&images=IMAGES_DIR&answer=short|full]``.

- Questions: every ``DIR/**/*questions*.json`` (sorted) or ``questions=``.
- Images: ``images=``, else ``DIR/images``, else ``DIR``; file ``<imageId>.jpg`` (or another
  image extension).
- ``answer=short`` (default) puts GQA's one-word ``answer`` in the assistant turn;
  ``answer=full`` its sentence ``fullAnswer``. ``answers`` = ``[answer]`` (GQA has one).

Split: from the file name (``train*`` -> train, ``val*`` -> val, ``testdev*``/``test*``/
``challenge*``/``submission*`` -> test). Items: questions, keyed ``q:<question_id>``.
Reject reasons (stage ``read``): ``malformed_question``, ``duplicate_question``,
``no_answers`` (test files carry none), ``missing_image``, ``path_outside_source``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from owl_data.records import Record, Reject, TextRow
from owl_data.sources import SourceError, SourceOptions
from owl_data.sources._common import (
    IMAGE_EXTS, STAGE, Located, grouped_scenes, image_ref, images_folder, load_json, option_path, parse_spec, spec_frame,
)

__all__ = ["read"]

OPTIONS = {
    "questions": "questions JSON (relative to DIR)",
    "images": "folder holding <imageId>.jpg",
    "answer": "short (answer, default) or full (fullAnswer)",
}


def _split(path: Path) -> str | None:
    n = path.name.lower()
    for prefixes, split in ((("train",), "train"), (("val",), "val"),
                            (("testdev", "test", "challenge", "submission"), "test")):
        if n.startswith(prefixes):
            return split
    return None


def _question_rows(name: str, path: Path, doc: dict, field: str,
                   seen: set[str]) -> Iterator[Reject | tuple[str, TextRow]]:
    """Each question of a file as ``(imageId, vqa row)`` or its Reject, in file order.

    ``seen`` holds the items of the files read before (updated here).
    """
    for qid, q in doc.items():
        item = f"q:{qid}"
        if item in seen:
            yield Reject(name, f"{item}@{path.name}", STAGE, "duplicate_question", f"seen before {path.name}")
            continue
        seen.add(item)
        if not isinstance(q, dict) or not isinstance(q.get("question"), str) or not q["question"].strip() \
                or not isinstance(q.get("imageId"), (str, int)):
            yield Reject(name, item, STAGE, "malformed_question", f"{path.name}: needs question and imageId")
            continue
        ans = q.get(field)
        if not isinstance(ans, str) or not ans.strip():
            yield Reject(name, item, STAGE, "no_answers", f"no {field}")
            continue
        yield str(q["imageId"]), TextRow(
            task="vqa", item=item, question=q["question"].strip(), answer=ans.strip(), answers=[ans.strip()])


def _locate(name: str, images: Path, iid: str, split: str | None, frame: str) -> Located:
    """``<imageId>`` with the first image extension found (``.jpg`` when none is)."""
    if not images.is_dir():
        return "missing_image", f"images folder {images} not found"
    rel = next((iid + e for e in IMAGE_EXTS if (images / (iid + e)).is_file()), iid + ".jpg")
    return image_ref(name, images, rel, split=split, frame=frame)


def read(spec: str, options: SourceOptions) -> Iterator[Record]:
    """Read GQA questions files; yield one Scene per image and Rejects.

    Raises:
        SourceError: ``DIR`` missing, no questions file, an unreadable one, a bad option.
    """
    root, opts = parse_spec("gqa", spec, OPTIONS)
    if not root.is_dir():
        raise SourceError(f"gqa: {root} is not a folder")
    field = {"short": "answer", "full": "fullAnswer"}.get(opts.get("answer", "short"))
    if field is None:
        raise SourceError(f"gqa: answer={opts['answer']!r}: use short or full")
    files = [option_path(root, opts["questions"])] if "questions" in opts else sorted(
        p for p in root.rglob("*questions*.json") if p.is_file())
    if not files:
        raise SourceError(f"gqa: no *questions*.json under {root} (or give ?questions=FILE)")
    images = images_folder(root, opts, [root / "images"])
    name = options.name
    seen: set[str] = set()
    for path in files:
        doc = load_json(path, "gqa")
        if not isinstance(doc, dict):
            raise SourceError(f"gqa: {path} is not an object question_id -> question")
        split = _split(path)
        yield from grouped_scenes(name, _question_rows(name, path, doc, field, seen),
                                  lambda iid: _locate(name, images, iid, split, spec_frame(opts)))
