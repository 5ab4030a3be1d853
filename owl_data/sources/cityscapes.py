"""Reader of the Cityscapes fine annotations (``gtFine``) as point-guided VQA scenes.

Layout (cityscapes-dataset.com, ``cityscapesscripts``)::

    ROOT/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png   (required)
    ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png      (optional)
    ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_polygons.json     (optional)

Source of truth: ``*_instanceIds.png``. It is a 16-bit PNG whose pixels hold
``class_id * 1000 + index`` for an object of a class with instances and the plain
``class_id`` for stuff and for objects labelled only as a group (``cargroup``). It is what
``cityscapesscripts.preparation.json2instanceImg`` draws from the polygons in their drawing
order, so every mask read from it is already the *visible*, occlusion-resolved region
(later polygons cover earlier ones). The polygons file is therefore not rasterised here;
when present, only its ``imgWidth``/``imgHeight`` are checked against the image (a
polygons file that cannot be parsed rejects the frame as ``unreadable_annotation``: it
signals a damaged download). Class names, ids and ``hasInstances`` come from
``cityscapesscripts.helpers.labels``.

Spec: ``DIR[?frame=upright|raw|auto]``. The label maps' size is the annotation's stated
size: it must be the image's raw or upright size as ``frame`` allows (default ``upright``;
equal for images without EXIF orientation, as Cityscapes ships them;
:func:`owl_data.ingest.frame.annotation_frame`), else the frame is ``size_mismatch``.

What one frame yields (all geometry is a bool :class:`~owl_data.records.MaskArray` in the
pixel grid of the label maps, H rows by W columns: the crop of the region's bounding
box at its offset, or the full (H, W) frame for a region whose box starts at (0, 0)):

- a thing :class:`~owl_data.records.Instance` per instanceIds value ``v >= 1000``:
  ``instance=str(v)``, category the label name of ``v // 1000``, item
  ``"<source_path>#<v>"``;
- a thing instance per 8-connected component (``scipy.ndimage.label``, components in
  scipy's label order, ``k`` from 0) of the object classes Cityscapes labels without
  instance ids (pole, traffic light, traffic sign): ``instance="<class_id>:<k>"``, item
  ``"<source_path>#<class_id>:<k>"``;
- a stuff instance (context, no item) for each of road, sidewalk, building, vegetation,
  sky present in the frame: ``instance=str(class_id)``;
- ``Scene.semantic``: the (H, W) uint8 labelIds map (derived from instanceIds when the
  labelIds file is absent: ``v if v < 1000 else v // 1000``);
- a :class:`~owl_data.records.Reject` ``group_label`` per class with instances that has
  group pixels (item ``"<source_path>#group:<class_id>"``), and ``unknown_label`` for an
  instance value whose class is not in the table or has no instances.

A frame that cannot be used is one Reject with item = its ``source_path`` and stage
``read``: ``missing_annotation`` (no instanceIds partner), ``unreadable_annotation``
(corrupt PNG/JSON, not a single-channel integer map, a polygons file whose
``imgWidth``/``imgHeight`` is not a finite whole number), ``size_mismatch`` (an annotation
whose size differs from the image header), ``unreadable_image`` (the image header cannot
be read), ``too_large`` (the image or a label map's header is over the build's
``max_image_pixels``, or Pillow calls it a decompression bomb), ``path_outside_source`` (a
symlink leading out of the root), ``not_a_regular_file`` (a FIFO, folder or device named
like a frame or annotation: a partner that exists is opened and refused, never taken for
missing), ``file_too_large`` (a frame or label map over the build's
``max_file_bytes``, refused from its size before it is read). Every header is checked before any label map is decoded,
so an oversized frame costs no memory.

A file name that is not UTF-8 on disk is written with backslash escapes in ``source_path``,
the items and the details (:func:`owl_data.sources._common.shown`); the file itself is read
by its real name.

Where the work happens: :func:`read` checks every header (and the polygons' size) and yields,
per usable frame, a small :class:`~owl_data.records.DeferredScene` (paths and header facts);
the build worker calls :func:`load_frame`, which reads each label map once (noting its
sha256 for the resume check), decodes it and builds the frame's Scene and Rejects. Rejects
of the header checks come from :func:`read`, those of decoding from :func:`load_frame`.
:func:`read_scenes` expands the frames in one process (tests, tools).

Memory: masks are crops of their boxes (a full-frame bool array is 2 MB on a 2048x1024
frame; only a region whose box starts at the frame's top-left corner, such as the sky, is
one); frames are expanded one at a time so only the frame being built is held.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
from cityscapesscripts.helpers.labels import id2label, labels, name2label
from scipy import ndimage

from owl_data.ingest.crops import renumber
from owl_data.ingest.files import FileProblem
from owl_data.records import DeferredScene, ImageRef, Instance, MaskArray, Record, Reject, Scene, iter_expanded
from owl_data.sources import SourceError, SourceOptions
from owl_data.sources._cityscapes_files import (FrameError, check_frame, check_map_header, check_polygon_size,
                                                open_header, read_map)
from owl_data.sources._common import shown, spec_frame, split_options
from owl_data.sources._paths import UnsafePath, resolve_inside

__all__ = ["read", "read_scenes", "load_frame", "LOADER", "COMPONENT_CLASSES", "STUFF_CLASSES"]

IMAGE_SUFFIX = "_leftImg8bit.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
POLYGON_SUFFIX = "_gtFine_polygons.json"

# Object classes Cityscapes annotates without instance ids: one target per connected part.
COMPONENT_CLASSES: tuple[str, ...] = ("pole", "traffic light", "traffic sign")
# Stuff classes kept as context regions (road/sidewalk context for the generators).
STUFF_CLASSES: tuple[str, ...] = ("road", "sidewalk", "building", "vegetation", "sky")

_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity for scipy.ndimage.label
_INSTANCE_IDS = frozenset(l.id for l in labels if l.hasInstances and l.id >= 0)


def read_scenes(spec: str, options: SourceOptions) -> Iterator[Record]:
    """:func:`read` with every frame's :class:`~owl_data.records.DeferredScene` expanded here
    (its Scene, then its Rejects): the reader as one process sees it. Raises as :func:`read`."""
    return iter_expanded(read(spec, options))


def read(spec: str, options: SourceOptions) -> Iterator[Record]:
    """Read a Cityscapes root into deferred frames (one per usable frame) and Rejects.

    Only headers (and the polygons' stated size) are checked here; each usable frame is a
    :class:`~owl_data.records.DeferredScene` whose loader (:func:`load_frame`, run by the
    build worker) decodes the label maps into the frame's Scene and Rejects.

    Args:
        spec: the dataset root folder (holding ``leftImg8bit/`` and ``gtFine/``).
        options: reader options; ``options.name`` is stored as the source name.

    Returns:
        An iterator over records, frames in sorted (split, city, file name) order; an
        expanded frame's Scene comes before the Rejects of its group-labelled classes.

    Raises:
        SourceError: (at call time) the root does not exist, has no ``leftImg8bit``
            folder, or that folder holds no ``*_leftImg8bit.png`` frame.
    """
    path, opts = split_options("cityscapes", spec, {})
    root = Path(path).expanduser()
    if not root.is_dir():
        raise SourceError(f"cityscapes: root {str(root)!r} is not a folder")
    root = Path(os.path.realpath(root))
    images = root / "leftImg8bit"
    if not images.is_dir():
        raise SourceError(f"cityscapes: {str(root)!r} has no leftImg8bit/ folder (expected leftImg8bit/<split>/<city>/)")
    frames = list(_walk(images))
    if not frames:
        raise SourceError(f"cityscapes: no *{IMAGE_SUFFIX} under {str(images)!r} (expected leftImg8bit/<split>/<city>/)")
    return _read_frames(root, frames, options.name, options.max_image_pixels, options.max_file_bytes,
                        spec_frame(opts))


def _walk(images: Path) -> Iterator[tuple[str, str, str]]:
    """Yield (split, city, file name) of every frame, sorted at every level."""
    for split_dir in sorted(p for p in images.iterdir() if p.is_dir()):
        for city_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            for name in sorted(p.name for p in city_dir.iterdir()):
                if name.endswith(IMAGE_SUFFIX):
                    yield split_dir.name, city_dir.name, name


def _read_frames(root: Path, frames: list[tuple[str, str, str]], source: str, max_pixels: int,
                 max_bytes: int, frame: str) -> Iterator[Record]:
    """Each frame's records; a frame that cannot be used is one Reject keyed by its source_path."""
    for split, city, name in frames:
        source_path = shown(f"leftImg8bit/{split}/{city}/{name}")  # a name not UTF-8 on disk: escaped
        try:
            yield from _read_frame(root, split, city, name, source_path, source, (max_pixels, max_bytes), frame)
        except (FrameError, UnsafePath, FileProblem) as err:
            yield Reject(source, source_path, "read", err.reason, err.detail)


def _read_frame(root: Path, split: str, city: str, name: str, source_path: str, source: str,
                limits: tuple[int, int], frame: str) -> Iterator[Record]:
    """The frame's headers checked here (no pixel decoded); its label maps are decoded by
    :func:`load_frame` where the :class:`~owl_data.records.DeferredScene` is processed.

    The maps' size is the annotation's stated size: the instanceIds map fixes it (it must be
    the image's raw or upright size as ``frame`` allows: :func:`~owl_data.sources._cityscapes_files.check_frame`), and the
    labelIds map and the polygons' ``imgWidth``/``imgHeight`` must equal it."""
    image_path, _ = resolve_inside(root, root / "leftImg8bit" / split / city, name)
    image_size, orientation = open_header(image_path, source_path, "unreadable_image", limits)

    stem = name[: -len(IMAGE_SUFFIX)]
    gt_dir = root / "gtFine" / split / city
    inst_rel = shown(f"gtFine/{split}/{city}/{stem}{INSTANCE_SUFFIX}")
    # exists(), not is_file(): a FIFO or folder named like a partner is opened, and refused
    # there (not_a_regular_file, ingest.files.open_regular)
    if not (gt_dir / f"{stem}{INSTANCE_SUFFIX}").exists():
        raise FrameError("missing_annotation", f"no {inst_rel}")
    inst_path, _ = resolve_inside(root, gt_dir, f"{stem}{INSTANCE_SUFFIX}")
    width, height = open_header(inst_path, inst_rel, "unreadable_annotation", limits)[0]
    check_frame(inst_rel, (width, height), image_size, orientation, frame)

    label_rel = shown(f"gtFine/{split}/{city}/{stem}{LABEL_SUFFIX}")
    label_path: Path | None = None
    if (gt_dir / f"{stem}{LABEL_SUFFIX}").exists():
        label_path, _ = resolve_inside(root, gt_dir, f"{stem}{LABEL_SUFFIX}")
        check_map_header(label_path, label_rel, (width, height), limits)

    poly_rel = f"gtFine/{split}/{city}/{stem}{POLYGON_SUFFIX}"
    if (gt_dir / f"{stem}{POLYGON_SUFFIX}").exists():
        poly_path, _ = resolve_inside(root, gt_dir, f"{stem}{POLYGON_SUFFIX}")
        check_polygon_size(poly_path, poly_rel, (width, height))

    maps = ((str(inst_path), inst_rel), (str(label_path), label_rel) if label_path is not None else None)
    yield DeferredScene(source, LOADER, (source, source_path, split, shown(city), str(image_path), maps,
                                         (width, height), limits, frame), item=source_path, pixels=width * height)


LOADER = "owl_data.sources.cityscapes:load_frame"
"""The :class:`~owl_data.records.DeferredScene` loader of a frame (:func:`load_frame`)."""


def load_frame(source: str, source_path: str, split: str, city: str, image_path: str,
               maps: tuple[tuple[str, str], tuple[str, str] | None], size: tuple[int, int],
               limits: tuple[int, int], frame: str = "upright") -> list[Record]:
    """Decode one frame's label maps into its Scene and Rejects (run in the build worker).

    Args:
        source, source_path, split, city: the frame's source name, path under the root,
            split and city (its group).
        image_path: the leftImg8bit file (absolute).
        maps: ((instanceIds path, its path under the root), (labelIds path, rel) or None).
        size: (W, H) of the instanceIds header, checked by :func:`read` against the image
            (raw or upright as ``frame`` allows); every map must have it, and it is the
            Scene's ``declared_size``.
        limits: (max_image_pixels, max_file_bytes).
        frame: the spec's ``?frame=`` option (``ImageRef.frame``).

    Returns:
        [the Scene, then its group/unknown-label Rejects], or [one Reject keyed by
        ``source_path``] for a frame whose maps cannot be used (reasons of :func:`read`).
        Each map is read once and its sha256 noted (:func:`~owl_data.ingest.files.read_recorded`).
    """
    try:
        (inst_path, inst_rel), label = maps
        inst = read_map(Path(inst_path), inst_rel, size, limits)
        if not np.issubdtype(inst.dtype, np.integer) or inst.min() < 0:
            raise FrameError("unreadable_annotation", f"{inst_rel}: not a map of non-negative integer ids ({inst.dtype})")
        if label is not None:
            semantic = read_map(Path(label[0]), label[1], size, limits)
            if semantic.dtype != np.uint8:
                raise FrameError("unreadable_annotation", f"{label[1]}: expected 8-bit label ids, got {semantic.dtype}")
        else:
            semantic = np.where(inst < 1000, inst, inst // 1000).astype(np.uint8)
    except (FrameError, FileProblem) as err:
        return [Reject(source, source_path, "read", err.reason, err.detail)]
    instances, items, rejects = _instances(inst, source_path, source)
    ref = ImageRef(source=source, path=Path(image_path), source_path=source_path, group=city, split=split,
                   declared_size=size, frame=frame)
    return [Scene(ref=ref, instances=instances, semantic=semantic, items=items), *rejects]


def _crop(region: np.ndarray, sl: tuple[slice, slice]) -> MaskArray:
    """A MaskArray of the bool ``region`` found at ``sl`` of an (H, W) frame: a crop at offset
    (x0, y0), (0, 0) included (:class:`~owl_data.records.MaskArray`)."""
    y0, x0 = sl[0].start, sl[1].start
    return MaskArray(np.ascontiguousarray(region), (int(x0), int(y0)))


def _instances(inst: np.ndarray, source_path: str, source: str) -> tuple[list[Instance], list[str], list[Reject]]:
    """Instances, item keys and group/unknown rejects of one (H, W) instanceIds map.

    Masks are crops of each region's bounding box (:func:`_crop`), found in one pass over the
    map (``scipy.ndimage.find_objects`` over the map's values renumbered 1..n).
    """
    uniq, labels = renumber(inst)
    values = [int(v) for v in uniq]
    boxes = dict(zip(values, ndimage.find_objects(labels)))

    def region(v: int) -> tuple[np.ndarray, tuple[slice, slice]]:
        sl = boxes[v]
        return inst[sl] == v, sl

    instances: list[Instance] = []
    items: list[str] = []
    rejects: list[Reject] = []

    for v in values:
        if v < 1000:
            continue
        label = id2label.get(v // 1000)
        item = f"{source_path}#{v}"
        if label is None or not label.hasInstances:
            rejects.append(Reject(source, item, "read", "unknown_label", f"instance value {v}: class {v // 1000} has no instances"))
            continue
        instances.append(Instance(instance=str(v), category=label.name, kind="thing",
                                  geometry=_crop(*region(v)), item=item))
        items.append(item)

    present = set(values)
    for name in COMPONENT_CLASSES:
        cid = name2label[name].id
        if cid not in present:
            continue
        part, (rs, cs) = region(cid)  # components in the crop: the same raster order as in the frame
        components, n = ndimage.label(part, structure=_EIGHT)
        for k, (r, c) in enumerate(ndimage.find_objects(components)):
            item = f"{source_path}#{cid}:{k}"
            sl = (slice(rs.start + r.start, rs.start + r.stop), slice(cs.start + c.start, cs.start + c.stop))
            instances.append(Instance(instance=f"{cid}:{k}", category=name, kind="thing",
                                      geometry=_crop(components[r, c] == k + 1, sl), item=item))
            items.append(item)

    for name in STUFF_CLASSES:
        cid = name2label[name].id
        if cid in present:
            instances.append(Instance(instance=str(cid), category=name, kind="stuff",
                                      geometry=_crop(*region(cid)), item=None))

    for cid in sorted(_INSTANCE_IDS & present):
        part, sl = region(cid)
        # the group stays in the scene as crowd context: never a target, and it stops the
        # generators from counting that category (the annotation does not say how many)
        instances.append(Instance(instance=f"group:{cid}", category=id2label[cid].name, kind="thing",
                                  geometry=_crop(part, sl), item=None, crowd=True))
        rejects.append(Reject(source, f"{source_path}#group:{cid}", "read", "group_label",
                              f"{int(part.sum())} pixels of {id2label[cid].name} labelled as a group, no instance ids"))
    return instances, items, rejects
