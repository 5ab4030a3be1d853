"""Reader for Point and Ask / pointingqa (``pointingqa=DIR``): questions about a point.

Format (princetonvisualai/pointingqa, Mani et al. 2020, "Point and Ask"):
``spatial_dataset.json`` maps a Visual Genome image id to ``[{question, answer, point:
{x, y, ans}, id}]``; ``x, y`` are pixels of the VG image (x right, y down). The split
lists ``train_imgs_vs.json``, ``val_imgs_vs.json``, ``test_imgs_vs.json`` hold image ids.
Images are VG's, here ``vg_images/<image id>.jpg``.

Spec: ``DIR[?questions=FILE&images=DIR]``; defaults ``DIR/spatial_dataset.json`` and the
first of ``vg_images``, ``VG_100K``, ``images``, ``DIR``.

Rows: one ``point_vqa`` row per entry (the item, keyed ``<image id>:<index in its list>``):
user ``<image><point>question``, assistant ``answer`` (``point.ans`` when ``answer`` is
empty), ``point`` = (x / W, y / H) of the image (declared frame = the file's pixels),
``point_origin = "annotated"``, ``kind = "reasoning"``, ``generator =
"source-qa/pointingqa/spatial"``, ``target`` = (category ``""``: the dataset names none;
instance = the item key; bbox the degenerate box at the point). Split: the lists', else by
image. Reject reasons: stage ``read`` ``malformed_question``, ``missing_image``,
``path_outside_source``; stage ``geometry`` ``outside_image``, ``non_finite``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from owl_data.ingest.numbers import is_finite_number
from owl_data.records import Record, Reject, TextRow
from owl_data.sources import SourceError, SourceOptions
from owl_data.sources._common import (
    STAGE, image_ref, images_folder, load_json, option_path, parse_spec, spec_frame, scene_or_rejects,
)

__all__ = ["read", "GENERATOR"]

GENERATOR = "source-qa/pointingqa/spatial"
OPTIONS = {"questions": "spatial_dataset.json", "images": "folder of <VG image id>.jpg"}


def _splits(root: Path) -> dict[str, str]:
    """Image id -> split from the ``<split>_imgs_vs.json`` lists (a later list wins)."""
    splits: dict[str, str] = {}
    for split in ("train", "val", "test"):
        f = root / f"{split}_imgs_vs.json"
        if f.is_file():
            ids = load_json(f, "pointingqa")
            for i in ids if isinstance(ids, list) else []:
                splits[str(i)] = split
    return splits


def _image_rows(name: str, iid: str, entries: Any) -> tuple[list[TextRow], list[Reject]]:
    """The ``point_vqa`` rows of one image's entries, and the Rejects of the unusable ones."""
    rows: list[TextRow] = []
    rejects: list[Reject] = []
    for k, e in enumerate(entries if isinstance(entries, list) else []):
        item = f"{iid}:{k}"
        p = e.get("point") if isinstance(e, dict) else None
        answer = e.get("answer") if isinstance(e, dict) else None
        if (not isinstance(answer, str) or not answer.strip()) and isinstance(p, dict):
            answer = p.get("ans")
        if not isinstance(p, dict) or not is_finite_number(p.get("x")) or not is_finite_number(p.get("y")) \
                or not isinstance(e.get("question"), str) or not e["question"].strip() \
                or not isinstance(answer, str) or not answer.strip():
            rejects.append(Reject(name, item, STAGE, "malformed_question", "needs question, answer, point {x, y}"))
            continue
        rows.append(TextRow(task="point_vqa", item=item, question=e["question"].strip(), answer=answer.strip(),
                            point=(float(p["x"]), float(p["y"])), instance=item, category="",
                            kind="reasoning", generator=GENERATOR))
    if not isinstance(entries, list):
        rejects.append(Reject(name, f"{iid}", STAGE, "malformed_question", "not a list of questions"))
    return rows, rejects


def read(spec: str, options: SourceOptions) -> Iterator[Record]:
    """Read a pointingqa folder; one Scene per image with its point questions.

    Raises:
        SourceError: ``DIR`` or the questions file missing, or not an object of lists.
    """
    root, opts = parse_spec("pointingqa", spec, OPTIONS)
    if not root.is_dir():
        raise SourceError(f"pointingqa: {root} is not a folder")
    qpath = option_path(root, opts.get("questions", "spatial_dataset.json"))
    doc = load_json(qpath, "pointingqa")
    if not isinstance(doc, dict):
        raise SourceError(f"pointingqa: {qpath} is not an object image id -> questions")
    images = images_folder(root, opts, [root / "vg_images", root / "VG_100K", root / "images"])
    splits = _splits(root)
    name = options.name
    for iid in sorted(doc, key=lambda v: (len(v), v)):
        rows, rejects = _image_rows(name, iid, doc[iid])
        yield from rejects
        if rows:
            yield from scene_or_rejects(name, image_ref(name, images, f"{iid}.jpg", split=splits.get(iid),
                                                               frame=spec_frame(opts)), rows)
