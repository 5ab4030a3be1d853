"""Reader for COCO captions (``coco_captions=DIR``).

Format (cocodataset.org "Data format", image captioning): ``captions_<subtype>.json`` =
``{images: [{id, file_name, width, height}], annotations: [{id, image_id, caption}]}``;
images in ``<subtype>/`` (``train2014/COCO_train2014_....jpg``, ``val2017/0000....jpg``).

Spec: ``DIR[?captions=FILE&images=IMAGES_DIR]``.

- Captions: every ``DIR/**/captions_*.json`` (sorted), or ``captions=``.
- Images: ``images=``, else the first of ``DIR/<subtype>``, ``DIR/images/<subtype>``,
  ``DIR/images``, ``DIR`` (``<subtype>`` is the file name after ``captions_``);
  ``file_name`` is relative to it and must stay inside it.

Rows: one ``caption`` row per caption: ``<image>`` + a caption prompt from the pool /
the caption (whitespace collapsed). Split: the subtype's (``train*``/``val*``/``test*``).
Items: captions, keyed ``<file>:<annotation id>``. Ids (``id``, ``image_id``) must be integers
or strings (a list, an object, null: ``malformed_annotation``). Reject reasons (stage ``read``):
``malformed_annotation``, ``duplicate_annotation``, ``unknown_image``,
``malformed_image_entry``, ``missing_image``, ``path_outside_source``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterator

from owl_data.ingest.numbers import NumberError, pixel_int
from owl_data.records import Record, Reject, Scene, TextRow
from owl_data.sources import SourceError, SourceOptions
from owl_data.sources._common import first_existing, image_ref, load_json, option_path, parse_spec, source_id
from owl_data.sources.vqav2 import split_of_subtype

__all__ = ["read"]

STAGE = "read"
OPTIONS = {"captions": "captions JSON (relative to DIR)", "images": "folder file_name is relative to"}


def _size(v: Any) -> int | None:
    try:
        return pixel_int(v)  # 10**400, NaN, 1.5, bools -> None
    except NumberError:
        return None


def read(spec: str, options: SourceOptions) -> Iterator[Record]:
    """Read COCO captions files; yield one Scene per image (its captions) and Rejects.

    Raises:
        SourceError: ``DIR`` missing, no captions file, a file without images/annotations.
    """
    root, opts = parse_spec("coco_captions", spec, OPTIONS)
    if not root.is_dir():
        raise SourceError(f"coco_captions: {root} is not a folder")
    files = [option_path(root, opts["captions"])] if "captions" in opts else sorted(
        p for p in root.rglob("captions_*.json") if p.is_file())
    if not files:
        raise SourceError(f"coco_captions: no captions_*.json under {root} (or give ?captions=FILE)")
    name = options.name
    for path in files:
        doc = load_json(path, "coco_captions")
        if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) \
                or not isinstance(doc.get("annotations"), list):
            raise SourceError(f"coco_captions: {path} needs 'images' and 'annotations' lists")
        subtype = path.stem[len("captions_"):] if path.stem.startswith("captions_") else ""
        if "images" in opts:
            images = option_path(root, opts["images"])
        else:
            cands = [root / subtype, root / "images" / subtype] if subtype else []
            images = first_existing(cands + [root / "images", root]) or root
        entries: dict[int | str, dict] = {}
        for im in doc["images"]:
            if isinstance(im, dict) and (k := source_id(im.get("id"))) is not None:
                entries.setdefault(k, im)
        per_image: dict[int | str, list[TextRow]] = defaultdict(list)
        seen: set[int | str] = set()
        for index, ann in enumerate(doc["annotations"]):
            aid = source_id(ann.get("id")) if isinstance(ann, dict) else None
            item = f"{path.name}:{aid}" if aid is not None else f"{path.name}:#{index}"
            if aid is None or not isinstance(ann.get("caption"), str) or not ann["caption"].strip():
                yield Reject(name, item, STAGE, "malformed_annotation", f"entry {index} needs id and caption")
                continue
            if aid in seen:
                yield Reject(name, f"{item}#{index}", STAGE, "duplicate_annotation", f"id {aid!r} seen before")
                continue
            seen.add(aid)
            iid = source_id(ann.get("image_id"))
            if iid is None:
                yield Reject(name, item, STAGE, "malformed_annotation",
                             f"entry {index}: image_id {str(ann.get('image_id'))[:40]} is not an integer or a string")
                continue
            if iid not in entries:
                yield Reject(name, item, STAGE, "unknown_image", f"image_id {iid!r}")
                continue
            per_image[iid].append(TextRow(task="caption", item=item, answer=" ".join(ann["caption"].split())))
        for iid in sorted(per_image, key=lambda v: (isinstance(v, str), v)):
            e = entries[iid]
            w, h, fn = _size(e.get("width")), _size(e.get("height")), e.get("file_name")
            if not isinstance(fn, str):
                ref: Any = ("malformed_image_entry", f"image {iid!r} has no file_name")
            else:
                ref = image_ref(name, images, fn, split=split_of_subtype(subtype),
                                declared=(w, h) if w and h else None)
            if isinstance(ref, tuple):
                for tr in per_image[iid]:
                    yield Reject(name, tr.item, STAGE, *ref)
                continue
            yield Scene(ref=ref, rows=per_image[iid], sample_points=False)
