"""Reader for COCO-format instance annotations (``coco=IMAGES_DIR:ANNOTATIONS.json``).

Format (COCO, cocodataset.org "Data format", and ``pycocotools.coco``): a JSON object with
``images[{id, file_name, width, height}]``, ``categories[{id, name}]`` and
``annotations[{id, image_id, category_id, bbox: [x, y, w, h], segmentation, iscrowd}]``.
``segmentation`` is a list of polygons ``[[x1, y1, x2, y2, ...], ...]`` or, for crowd
regions, an RLE ``{size: [h, w], counts}``. All coordinates are pixels of the frame whose
size the ``images`` entry states (``width`` x ``height``), x to the right, y down.

Items (the unit of accounting) are annotations, keyed ``ann:<id>``; an annotation whose
``id`` is missing or not an integer (COCO ids are integers: a string ``"1"`` would share
``ann:1`` with the integer ``1``; bools are not integers here) is rejected
(``malformed_annotation``) and keyed by its position, ``ann:#<index>``. One
:class:`~owl_data.records.Scene` is yielded per image that has at least one usable
annotation, in increasing image id; images without annotations are not items and are
skipped. COCO has no grouping of images, so each image is its own split group
(``group`` = its ``source_path``).

The reader never decodes an image: it only checks that ``file_name`` stays inside
``IMAGES_DIR`` (the source root) and that the file exists. Geometry is passed through as
written; :func:`owl_data.ingest.geometry.resolve_instance` validates coordinates in the builder.

Reject reasons (stage ``read``): ``malformed_annotation``, ``non_finite`` (a bbox number
that is infinite or too large for a float, e.g. ``10**400``), ``unknown_image``,
``unknown_category`` (also a category whose name is not valid Unicode text), ``no_geometry``,
``duplicate_annotation``, ``malformed_image_entry`` (width/height not a finite whole number, a
``file_name`` that is not a string or not valid Unicode text, ...), ``path_outside_source``,
``missing_image``.
Numbers go through :mod:`owl_data.ingest.numbers`; RLE sizes and compressed counts are checked in
:mod:`owl_data.ingest.geometry` (``bad_rle``) before pycocotools sees them. An annotation file
that cannot be parsed at all (bad JSON, nested too deeply, a 5000-digit integer) is a
:class:`~owl_data.sources.SourceError` naming the file.

Grounding: each image also carries :func:`grounding_rows` (category -> the annotation's
box, both directions; a relation word such as "the left car" when the image holds several
of the category); an annotation is kept when it made a point row or a grounding row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from owl_data.ingest.files import FileProblem, open_regular
from owl_data.ingest.numbers import NumberError, finite_float, pixel_int
from owl_data.records import RLE, Box, Instance, Polygons, Record, Reject, Scene, TextRow
from owl_data.sources import SourceError, SourceOptions
from owl_data.sources._common import STAGE, id_order, image_ref, reject_items, spec_frame, split_options, text_problem

__all__ = ["read", "parse_spec", "grounding_rows"]


def parse_spec(spec: str) -> tuple[Path, Path, str]:
    """Split ``IMAGES_DIR:ANNOTATIONS.json[?frame=upright|raw|auto]``: the options after ``?``
    (:func:`owl_data.sources._common.split_options`), then the path on its last ``:``.

    Returns:
        (images root, annotations file, the ``frame`` option).

    Raises:
        SourceError: no ``:``, either side empty, or a bad option.
    """
    spec, opts = split_options("coco", spec, {})
    if ":" not in spec:
        raise SourceError(f"coco spec {spec!r} must be IMAGES_DIR:ANNOTATIONS.json")
    images, ann = spec.rsplit(":", 1)
    if not images or not ann:
        raise SourceError(f"coco spec {spec!r} must be IMAGES_DIR:ANNOTATIONS.json")
    return Path(images), Path(ann), spec_frame(opts)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _short(v: Any) -> str:
    r = repr(v) if not isinstance(v, int) or abs(v) < 10**40 else f"<{v.bit_length()}-bit int>"
    return r if len(r) <= 80 else r[:77] + "..."


def _pixel_size(v: Any) -> int | None:
    """A positive integral size in pixels (``500`` or ``500.0``), else None."""
    try:
        return pixel_int(v)
    except NumberError:
        return None


def _load(ann_path: Path) -> dict:
    try:
        with open_regular(ann_path, what="annotation") as f:  # a FIFO or folder: refused, never waited on
            data = json.load(f)
    except FileProblem as exc:
        if exc.reason == "missing_annotation":
            raise SourceError(f"COCO annotation file {ann_path} does not exist") from None
        raise SourceError(f"cannot read COCO annotation file {exc.detail}") from None
    except (OSError, ValueError) as exc:  # ValueError: bad JSON, a 5000-digit integer
        raise SourceError(f"cannot read COCO annotation file {ann_path}: {exc}") from None
    except RecursionError:
        raise SourceError(f"cannot read COCO annotation file {ann_path}: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise SourceError(f"{ann_path}: top level is {type(data).__name__}, expected an object")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise SourceError(f"{ann_path}: {key!r} missing or not a list")
    if not isinstance(data.get("categories", []), list):
        raise SourceError(f"{ann_path}: 'categories' is not a list")
    return data


def _geometry(ann: dict) -> tuple[Polygons | RLE | Box | None, str]:
    """(geometry, problem): problem is ``""`` or a reject reason with its detail."""
    seg = ann.get("segmentation")
    if isinstance(seg, list) and seg:
        if not all(isinstance(p, list) for p in seg):
            return None, "malformed_annotation|segmentation is not a list of polygons"
        return Polygons(seg), ""
    if isinstance(seg, dict) and seg:
        return RLE(seg), ""
    if seg not in (None, [], {}):
        return None, f"malformed_annotation|segmentation of type {type(seg).__name__}"
    bbox = ann.get("bbox")
    if bbox is None:
        return None, "no_geometry|neither segmentation nor bbox"
    if not (isinstance(bbox, list) and len(bbox) == 4):
        return None, f"malformed_annotation|bbox {_short(bbox)} is not [x, y, w, h]"
    try:
        x, y, w, h = (finite_float(v, "bbox value") for v in bbox)
    except NumberError as exc:
        reason = "non_finite" if exc.reason == "non_finite" else "malformed_annotation"
        return None, f"{reason}|{exc.detail}"
    return Box(x, y, x + w, y + h), ""


def _categories(data: dict) -> dict[Any, str | None]:
    """Category id (an integer or a string) -> name; the first of a repeated id wins.

    A name that is not valid Unicode text (a lone surrogate escape) maps to None: the
    annotations of that category are ``unknown_category``, never a row that cannot be written.
    """
    categories: dict[Any, str | None] = {}
    for c in data.get("categories", []):
        if isinstance(c, dict) and (_is_int(c.get("id")) or isinstance(c.get("id"), str)) \
                and isinstance(c.get("name"), str):
            categories.setdefault(c["id"], None if text_problem(c["name"]) else c["name"])
    return categories


def _images(data: dict) -> tuple[dict[Any, dict], set[Any]]:
    """Image entries by id (the first of a repeated id), and the ids that appear more than once.

    Entries whose id is not an integer or a string are left out: nobody can refer to them,
    so annotations naming them are ``unknown_image``.
    """
    images: dict[Any, dict] = {}
    duplicates: set[Any] = set()
    for im in data["images"]:
        iid = im.get("id") if isinstance(im, dict) else None
        if not (_is_int(iid) or isinstance(iid, str)):
            continue
        if iid in images:
            duplicates.add(iid)
        else:
            images[iid] = im
    return images, duplicates


def _annotation(name: str, index: int, ann: Any, images: dict[Any, dict], categories: dict[Any, str | None],
                seen_ids: set[Any]) -> Reject | tuple[Any, Instance]:
    """Annotation ``index`` as ``(image id, Instance)``, or its Reject.

    ``seen_ids`` holds the annotation ids read before (this one is added when it is new).
    """
    aid = ann.get("id") if isinstance(ann, dict) else None
    if not isinstance(ann, dict) or not _is_int(aid):
        # COCO ids are integers: a string id ("1") would share the key ann:1 with the
        # integer 1, so anything else is keyed by its position, which is unique
        return Reject(name, f"ann:#{index}", STAGE, "malformed_annotation",
                      f"entry {index}: id {_short(aid)} is not an integer")
    item = f"ann:{aid}"
    if aid in seen_ids:
        return Reject(name, f"ann:{aid}#{index}", STAGE, "duplicate_annotation", f"id {aid!r} seen before")
    seen_ids.add(aid)
    iid, cid = ann.get("image_id"), ann.get("category_id")
    if not (_is_int(iid) or isinstance(iid, str)):
        return Reject(name, item, STAGE, "malformed_annotation", f"image_id {iid!r}")
    if iid not in images:
        return Reject(name, item, STAGE, "unknown_image", f"image_id {iid!r} not in images")
    if not (_is_int(cid) or isinstance(cid, str)) or cid not in categories:
        return Reject(name, item, STAGE, "unknown_category", f"category_id {cid!r} not in categories")
    if categories[cid] is None:
        return Reject(name, item, STAGE, "unknown_category", f"category {cid!r}: name is not valid Unicode text")
    crowd = ann.get("iscrowd", 0)
    if crowd is None:
        crowd = 0
    if not (_is_int(crowd) or isinstance(crowd, bool)):
        return Reject(name, item, STAGE, "malformed_annotation", f"iscrowd {crowd!r}")
    geometry, problem = _geometry(ann)
    if problem:
        reason, detail = problem.split("|", 1)
        return Reject(name, item, STAGE, reason, detail)
    return iid, Instance(instance=str(aid), category=categories[cid], kind="thing", geometry=geometry,
                         item=item, crowd=bool(crowd))


def _image_scene(name: str, root: Path, iid: Any, entry: dict, instances: list[Instance],
                 duplicate: bool, frame: str) -> Iterator[Record]:
    """The Scene of one image's instances, or one Reject per instance when the image is unusable."""
    items = [i.item for i in instances]
    if duplicate:
        yield from reject_items(name, items, "malformed_image_entry", f"image id {iid!r} appears more than once")
        return
    w, h = _pixel_size(entry.get("width")), _pixel_size(entry.get("height"))
    file_name = entry.get("file_name")
    if w is None or h is None or not isinstance(file_name, str) or text_problem(file_name):
        yield from reject_items(
            name, items, "malformed_image_entry",
            f"image {iid!r}: width {_short(entry.get('width'))}, height {_short(entry.get('height'))}, "
            f"file_name {_short(file_name)}")
        return
    ref = image_ref(name, root, file_name, declared=(w, h), frame=frame)
    if isinstance(ref, tuple):
        yield from reject_items(name, items, *ref)
        return
    yield Scene(ref=ref, instances=instances, items=items, rows=grounding_rows(instances))


def read(spec: str, options: SourceOptions) -> Iterator[Record]:
    """Read a COCO instances file; yield one Scene per annotated image and Rejects.

    Args:
        spec: ``IMAGES_DIR:ANNOTATIONS.json[?frame=upright|raw|auto]``. ``IMAGES_DIR`` is the
            source root: every ``file_name`` is relative to it and must resolve inside it;
            ``frame`` (default ``upright``) is the frame of an EXIF-oriented image the
            annotations are in (:func:`owl_data.ingest.frame.annotation_frame`).
        options: reader options; ``options.name`` becomes ``ImageRef.source``.

    Yields:
        First the Rejects found while reading annotations (file order), then per image in
        increasing id either a Scene (``declared_size`` = the entry's (width, height) in
        pixels; instances in increasing annotation id, whatever the order of the
        ``annotations`` list, ``kind="thing"``, ``crowd`` from ``iscrowd``) or
        one Reject per annotation of an image that cannot be used.

    Raises:
        SourceError: missing images folder, missing or unparsable JSON, or a top level
            without ``images``/``annotations`` lists.
    """
    root, ann_path, frame = parse_spec(spec)
    if not root.is_dir():
        raise SourceError(f"COCO images folder {root} does not exist")
    data = _load(ann_path)
    name = options.name
    categories = _categories(data)
    images, duplicate_images = _images(data)
    per_image: dict[Any, list[Instance]] = {}
    seen_ids: set[Any] = set()
    for index, ann in enumerate(data["annotations"]):
        got = _annotation(name, index, ann, images, categories, seen_ids)
        if isinstance(got, Reject):
            yield got
        else:
            per_image.setdefault(got[0], []).append(got[1])
    for iid in sorted(per_image, key=id_order):
        # by annotation id (unique, integers): the rows do not depend on the list's order
        instances = sorted(per_image[iid], key=lambda i: int(i.instance))
        yield from _image_scene(name, root, iid, images[iid], instances, iid in duplicate_images, frame)


def grounding_rows(instances: list[Instance]) -> list[TextRow]:
    """Grounding rows of an image: each non-crowd annotation's category -> its region's box.

    The builder names each box by its category, with a relation word when the image holds
    several of that category ("the left car"); categories that also have a crowd region in
    the image are skipped (which of the crowd is "the person" cannot be said).
    """
    crowd = {i.category for i in instances if i.crowd}
    return [TextRow(task="grounding", item=i.item, key="category", category=i.category, instance=i.instance)
            for i in instances if not i.crowd and i.category not in crowd and i.item]
