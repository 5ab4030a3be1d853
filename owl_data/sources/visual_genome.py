"""Reader for Visual Genome region descriptions and QA (``visual_genome=DIR``).

Format (visualgenome.org "API / data", v1.2): ``region_descriptions.json`` =
``[{id, regions: [{region_id, image_id, x, y, width, height, phrase}]}]`` (pixels; v1.2
has thousands of regions with negative or out-of-image boxes); ``question_answers.json``
= ``[{id, qas: [{qa_id, image_id, question, answer, ...}]}]``; ``image_data.json`` =
``[{image_id | id, width, height, url}]``; images ``VG_100K/<id>.jpg`` and
``VG_100K_2/<id>.jpg``.

Spec: ``DIR[?regions=FILE&qa=FILE&image_data=FILE&images=DIR]``; defaults: the
``*region_descriptions*.json``, ``*question_answers*.json`` and ``image_data.json`` in
``DIR`` (any may be absent, not both of the first two); images looked up in
``images=`` or ``VG_100K``, ``VG_100K_2``, ``images``, ``vg_images``, ``DIR``.

Rows: a region (item ``region:<region_id>``) is a grounding pair, its phrase <-> its box,
clipped to the image; a box of zero width or height is rejected (``zero_area``), one
wholly outside ``outside_image``. A QA (item ``qa:<qa_id>``) is a ``vqa`` row, ``answers``
= ``[answer]``. Boxes are in the ``image_data.json`` size when given (else the file's
pixel frame). No split of its own: by image. Reject reasons: stage ``read``
``malformed_region``, ``malformed_qa``, ``missing_image``, ``path_outside_source``;
stage ``geometry`` ``zero_area``, ``outside_image``, ``bad_box``, ``absurd_coordinates``.
"""

from __future__ import annotations

from itertools import chain
from pathlib import Path
from typing import Any, Iterator

from owl_data.ingest.numbers import is_finite_number
from owl_data.records import Box, Record, Reject, TextRow
from owl_data.sources import SourceError, SourceOptions
from owl_data.sources._common import (
    IMAGE_EXTS, STAGE, Located, grouped_scenes, image_ref, load_json, option_path, parse_spec, spec_frame,
)

__all__ = ["read"]

OPTIONS = {"regions": "region descriptions JSON", "qa": "question answers JSON",
           "image_data": "image_data.json (sizes)", "images": "folder of <id>.jpg"}


def _one(root: Path, opts: dict[str, str], key: str, pattern: str) -> Path | None:
    if key in opts:
        p = option_path(root, opts[key])
        if not p.is_file():
            raise SourceError(f"visual_genome: {key}={p} does not exist")
        return p
    found = sorted(p for p in root.glob(pattern) if p.is_file())
    if len(found) > 1:
        raise SourceError(f"visual_genome: several {pattern} in {root}: name one with ?{key}=FILE")
    return found[0] if found else None


def _entries(doc: Any, path: Path) -> list:
    """The top-level list of a VG file (one entry per image); SourceError when it is not a list."""
    if not isinstance(doc, list):
        raise SourceError(f"visual_genome: {path} is not a list of images")
    return doc


def _listed(path: Path, list_key: str, id_key: str, prefix: str) -> Iterator[tuple[Any, str, Any, str]]:
    """``(object, item, id, image key)`` of every object in the ``list_key`` list of each image entry.

    ``item`` is ``<prefix>:<id>``, or ``<prefix>:<entry id>#<index>`` when the object has
    no ``id_key`` (then ``id`` is None, the caller rejects it and the image key is ``""``);
    the image key is the object's ``image_id``, else its entry's ``id``, as a string.

    Raises:
        SourceError: the file is unreadable or not a list.
    """
    for entry in _entries(load_json(path, "visual_genome"), path):
        listed = entry.get(list_key) if isinstance(entry, dict) else None
        for k, obj in enumerate(listed if isinstance(listed, list) else []):
            oid = obj.get(id_key) if isinstance(obj, dict) else None
            if oid is None:
                yield obj, f"{prefix}:{entry.get('id')}#{k}", None, ""
            else:
                yield obj, f"{prefix}:{oid}", oid, str(obj.get("image_id", entry.get("id")))


def _region_rows(name: str, path: Path) -> Iterator[Reject | tuple[str, TextRow]]:
    """Each region as ``(image id, grounding row)`` (phrase -> box, pixels) or its Reject."""
    for r, item, rid, iid in _listed(path, "regions", "region_id", "region"):
        if rid is None or not all(is_finite_number(r.get(f)) for f in ("x", "y", "width", "height")) \
                or not isinstance(r.get("phrase"), str) or not r["phrase"].strip():
            yield Reject(name, item, STAGE, "malformed_region", "needs region_id, x, y, width, height, phrase")
            continue
        x, y, w, h = (float(r[f]) for f in ("x", "y", "width", "height"))
        yield iid, TextRow(task="grounding", item=item, expression=" ".join(r["phrase"].split()),
                           box=Box(x, y, x + w, y + h))


def _qa_rows(name: str, path: Path) -> Iterator[Reject | tuple[str, TextRow]]:
    """Each question-answer pair as ``(image id, vqa row)`` or its Reject."""
    for q, item, qid, iid in _listed(path, "qas", "qa_id", "qa"):
        if qid is None or not isinstance(q.get("question"), str) or not isinstance(q.get("answer"), str) \
                or not q["question"].strip() or not q["answer"].strip():
            yield Reject(name, item, STAGE, "malformed_qa", "needs qa_id, question, answer")
            continue
        ans = q["answer"].strip()
        yield iid, TextRow(task="vqa", item=item, question=q["question"].strip(), answer=ans, answers=[ans])


def _sizes(data_f: Path | None) -> dict[str, tuple[int, int]]:
    """Image id -> (width, height) in pixels from ``image_data.json`` ({} without one)."""
    sizes: dict[str, tuple[int, int]] = {}
    if data_f is not None:
        for e in _entries(load_json(data_f, "visual_genome"), data_f):
            if isinstance(e, dict) and isinstance(e.get("width"), int) and isinstance(e.get("height"), int):
                sizes[str(e.get("image_id", e.get("id")))] = (e["width"], e["height"])
    return sizes


def _locate(name: str, root: Path, folders: list[Path], iid: str,
            sizes: dict[str, tuple[int, int]], frame: str) -> Located:
    """``<id>`` with an image extension in the first folder that holds it."""
    found = next(((d, iid + e) for d in folders for e in IMAGE_EXTS if (d / (iid + e)).is_file()), None)
    if found is None:
        return "missing_image", f"{iid}.jpg not found"
    return image_ref(name, root if found[0] == root or root in found[0].parents else found[0], found[1],
                     base=found[0], declared=sizes.get(iid), frame=frame)


def read(spec: str, options: SourceOptions) -> Iterator[Record]:
    """Read VG regions and QA; yield one Scene per image and Rejects.

    Raises:
        SourceError: ``DIR`` missing, neither a regions nor a QA file, an unreadable file.
    """
    root, opts = parse_spec("visual_genome", spec, OPTIONS)
    if not root.is_dir():
        raise SourceError(f"visual_genome: {root} is not a folder")
    regions_f = _one(root, opts, "regions", "*region_descriptions*.json")
    qa_f = _one(root, opts, "qa", "*question_answers*.json")
    if regions_f is None and qa_f is None:
        raise SourceError(f"visual_genome: no region_descriptions.json or question_answers.json in {root}")
    data_f = _one(root, opts, "image_data", "image_data.json")
    folders = [option_path(root, opts["images"])] if "images" in opts else [
        root / n for n in ("VG_100K", "VG_100K_2", "images", "vg_images")] + [root]
    sizes = _sizes(data_f)
    name = options.name
    parsed = chain(_region_rows(name, regions_f) if regions_f is not None else (),
                   _qa_rows(name, qa_f) if qa_f is not None else ())
    yield from grouped_scenes(name, parsed, lambda iid: _locate(name, root, folders, iid, sizes, spec_frame(opts)),
                              order=lambda v: (len(v), v))
