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

from pathlib import Path
from typing import Any, Iterator

from owl_data.ingest.numbers import NumberError, pixel_int
from owl_data.records import Record, Reject, TextRow
from owl_data.sources import SourceError, SourceOptions
from owl_data.sources._common import (
    STAGE, Located, grouped_scenes, image_ref, images_folder, load_json, option_path, parse_spec, source_id, spec_frame,
    subtype_folders,
)
from owl_data.sources.vqav2 import split_of_subtype

__all__ = ["read"]

OPTIONS = {"captions": "captions JSON (relative to DIR)", "images": "folder file_name is relative to"}


def _size(v: Any) -> int | None:
    try:
        return pixel_int(v)  # 10**400, NaN, 1.5, bools -> None
    except NumberError:
        return None


def _caption_rows(name: str, path: Path, annotations: list,
                  entries: dict[int | str, dict]) -> Iterator[Reject | tuple[int | str, TextRow]]:
    """Each caption of a file as ``(image id, caption row)`` or its Reject, in file order."""
    seen: set[int | str] = set()
    for index, ann in enumerate(annotations):
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
        yield iid, TextRow(task="caption", item=item, answer=" ".join(ann["caption"].split()))


def _locate(name: str, images: Path, entry: dict, iid: int | str, split: str | None, frame: str) -> Located:
    """The image of an ``images`` entry (its declared size when width and height are usable)."""
    w, h, fn = _size(entry.get("width")), _size(entry.get("height")), entry.get("file_name")
    if not isinstance(fn, str):
        return "malformed_image_entry", f"image {iid!r} has no file_name"
    return image_ref(name, images, fn, split=split, declared=(w, h) if w and h else None, frame=frame)


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
        images = images_folder(root, opts, subtype_folders(root, subtype))
        entries: dict[int | str, dict] = {}
        for im in doc["images"]:
            if isinstance(im, dict) and (k := source_id(im.get("id"))) is not None:
                entries.setdefault(k, im)
        split = split_of_subtype(subtype)
        yield from grouped_scenes(name, _caption_rows(name, path, doc["annotations"], entries),
                                  lambda iid: _locate(name, images, entries[iid], iid, split, spec_frame(opts)))
