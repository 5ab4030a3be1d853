"""Reader for VQA v2 (``vqav2=DIR``): official questions + annotations JSON and COCO images.

Format (visualqa.org, "VQA v2 download"; ``vqaTools/vqa.py``): questions
``{data_subtype, questions: [{question_id, image_id, question}]}`` and annotations
``{annotations: [{question_id, answers: [10 x {answer, answer_confidence, answer_id}], ...}]}``
(``image_id``, ``multiple_choice_answer`` and the type fields are not needed: small samples
omit them). Images are COCO's ``<subtype>/COCO_<subtype>_<12-digit image id>.jpg``.

Spec: ``DIR[?questions=Q.json&annotations=A.json&images=IMAGES_DIR]``.

- Questions: every ``DIR/**/*questions*.json`` (sorted), or ``questions=``.
- Annotations, per questions file, in its folder: the official partner name
  (``v2_OpenEnded_mscoco_train2014_questions.json`` -> ``v2_mscoco_train2014_annotations.json``),
  the name with ``questions`` replaced by ``annotations``, or the only ``*annotations*.json``
  there; or ``annotations=``. A questions file without annotations (test splits) rejects
  its questions ``no_answers``.
- Images: ``images=``, else the first of ``DIR/<subtype>``, ``DIR/images/<subtype>``,
  ``DIR/images``, ``DIR``; file ``COCO_<subtype>_<id:012d>`` or ``<id:012d>`` with a
  ``.jpg``/``.jpeg``/``.png``/``.webp`` extension.

Rows: one ``vqa`` row per question: ``<image>question`` / the most frequent answer (ties:
the one given first); ``answers`` = all annotator answers in file order.
Split: the subtype's (``train2014`` -> train, ``val2014`` -> val, ``test*`` -> test).
Items: questions, keyed ``q:<question_id>``. Reject reasons (stage ``read``):
``malformed_question``, ``duplicate_question``, ``no_answers``, ``malformed_annotation``,
``missing_image``, ``path_outside_source``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from owl_data.records import Record, Reject, TextRow
from owl_data.sources import SourceError, SourceOptions
from owl_data.sources._common import (
    IMAGE_EXTS, STAGE, first_existing, grouped_scenes, image_ref, images_folder, load_json, majority_answer,
    option_path, parse_spec, spec_frame, subtype_folders,
)

__all__ = ["read", "split_of_subtype"]

OPTIONS = {
    "questions": "questions JSON (relative to DIR)",
    "annotations": "annotations JSON (with questions=)",
    "images": "folder holding the COCO images",
}
_SUBTYPE_RE = re.compile(r"(train|val|test-dev|test)(\d{4})")


def split_of_subtype(subtype: str | None) -> str | None:
    """``train2014`` -> ``train``, ``val2014`` -> ``val``, ``test*`` -> ``test``, else None."""
    if not subtype:
        return None
    for prefix, split in (("train", "train"), ("val", "val"), ("test", "test")):
        if subtype.startswith(prefix):
            return split
    return None


def _is_id(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, str) and v != "")


def _partner(q: Path) -> Path | None:
    names = [q.name.replace("OpenEnded_", "").replace("MultipleChoice_", "").replace("questions", "annotations"),
             q.name.replace("questions", "annotations")]
    found = first_existing((q.parent / n for n in names), is_dir=False)
    if found is not None:
        return found
    others = sorted(p for p in q.parent.glob("*annotations*.json") if p.is_file())
    mine = sorted(p for p in q.parent.glob("*questions*.json") if p.is_file())
    return others[0] if len(others) == 1 and len(mine) == 1 else None


def _pairs(root: Path, opts: dict[str, str]) -> list[tuple[Path, Path | None]]:
    if "questions" in opts:
        q = option_path(root, opts["questions"])
        a = option_path(root, opts["annotations"]) if "annotations" in opts else _partner(q)
        return [(q, a)]
    if "annotations" in opts:
        raise SourceError("vqav2: annotations= needs questions= as well")
    files = sorted(p for p in root.rglob("*questions*.json") if p.is_file())
    if not files:
        raise SourceError(f"vqav2: no *questions*.json under {root} (or give ?questions=FILE)")
    return [(q, _partner(q)) for q in files]


def _image_file(folder: Path, subtype: str | None, image_id: Any) -> str:
    stems = []
    if isinstance(image_id, int):
        if subtype:
            stems.append(f"COCO_{subtype}_{image_id:012d}")
        stems.append(f"{image_id:012d}")
    stems.append(str(image_id))
    for stem in stems:
        for ext in IMAGE_EXTS:
            if (folder / (stem + ext)).is_file():
                return stem + ext
    return stems[0] + IMAGE_EXTS[0]


def _subtype(qdoc: dict, qpath: Path) -> str | None:
    """The file's ``data_subtype`` (``train2014``), else one found in its name, else None."""
    if isinstance(qdoc.get("data_subtype"), str):
        return qdoc["data_subtype"]
    m = _SUBTYPE_RE.search(qpath.name)
    return m.group(0) if m else None


def _answers(apath: Path | None) -> dict[Any, dict]:
    """Annotations by ``question_id`` (the first of a repeated id wins); {} without a file.

    Raises:
        SourceError: the file is unreadable or has no ``annotations`` list.
    """
    answers: dict[Any, dict] = {}
    if apath is None:
        return answers
    adoc = load_json(apath, "vqav2")
    if not isinstance(adoc, dict) or not isinstance(adoc.get("annotations"), list):
        raise SourceError(f"vqav2: {apath} has no 'annotations' list")
    for ann in adoc["annotations"]:
        if isinstance(ann, dict) and _is_id(ann.get("question_id")):
            answers.setdefault(ann["question_id"], ann)
    return answers


def _question_row(name: str, qpath: Path, index: int, q: Any, answers: dict[Any, dict],
                  seen: set[Any]) -> Reject | tuple[Any, TextRow]:
    """Entry ``index`` of a questions file as ``(image_id, vqa row)``, or its Reject.

    ``seen`` holds the question ids read before (this one is added when it is new).
    """
    qid = q.get("question_id") if isinstance(q, dict) else None
    item = f"q:{qid}" if _is_id(qid) else f"q:#{qpath.name}:{index}"
    if not _is_id(qid) or not _is_id(q.get("image_id")) or not isinstance(q.get("question"), str) \
            or not q["question"].strip():
        return Reject(name, item, STAGE, "malformed_question", f"{qpath.name} entry {index}")
    if qid in seen:
        return Reject(name, f"{item}@{qpath.name}", STAGE, "duplicate_question", f"seen before {qpath.name}")
    seen.add(qid)
    ann = answers.get(qid)
    if ann is None:
        return Reject(name, item, STAGE, "no_answers", f"no annotation for question {qid}")
    raw = ann.get("answers")
    if not isinstance(raw, list) or not raw or not all(
            isinstance(a, dict) and isinstance(a.get("answer"), str) for a in raw):
        return Reject(name, item, STAGE, "malformed_annotation", "answers is not a list of {answer}")
    texts = [a["answer"] for a in raw]
    return q["image_id"], TextRow(task="vqa", item=item, question=q["question"].strip(),
                                  answer=majority_answer(texts), answers=texts)


def read(spec: str, options: SourceOptions) -> Iterator[Record]:
    """Read VQA v2 questions/annotations; yield one Scene per image (its questions) and Rejects.

    Raises:
        SourceError: ``DIR`` missing, no questions file, or an unreadable JSON file.
    """
    root, opts = parse_spec("vqav2", spec, OPTIONS)
    if not root.is_dir():
        raise SourceError(f"vqav2: {root} is not a folder")
    name = options.name
    seen: set[Any] = set()
    for qpath, apath in _pairs(root, opts):
        qdoc = load_json(qpath, "vqav2")
        if not isinstance(qdoc, dict) or not isinstance(qdoc.get("questions"), list):
            raise SourceError(f"vqav2: {qpath} has no 'questions' list")
        subtype = _subtype(qdoc, qpath)
        answers = _answers(apath)
        images = images_folder(root, opts, subtype_folders(root, subtype))
        split = split_of_subtype(subtype)
        parsed = (_question_row(name, qpath, i, q, answers, seen) for i, q in enumerate(qdoc["questions"]))
        if not images.is_dir():  # every question rejected, images in the order first seen
            missing = ("missing_image", f"images folder {images} not found")
            yield from grouped_scenes(name, parsed, lambda iid: missing, order=None)
            continue
        yield from grouped_scenes(
            name, parsed, lambda iid: image_ref(name, images, _image_file(images, subtype, iid), split=split,
                                            frame=spec_frame(opts)))
