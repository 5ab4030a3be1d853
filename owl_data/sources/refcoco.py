"""Reader for RefCOCO / RefCOCO+ / RefCOCOg (``refcoco=DIR``), pickles read safely.

Format (lichengunc/refer, ``refer.py``): ``refs(<splitBy>).p`` (``unc``, ``google``,
``umd``) is a pickled list of ``{ref_id, ann_id, image_id, split, sentences: [{sent, raw,
tokens, sent_id}], category_id}``; ``instances.json`` is a COCO instances file whose
annotation ``bbox`` ([x, y, w, h], pixels) each ``ann_id`` names; images are COCO
train2014 (``COCO_train2014_<12-digit id>.jpg``), in refer's layout
``data/images/mscoco/images/train2014`` beside ``data/refcoco``.

A pickle can run code while it loads. The refs file is read by :class:`PlainUnpickler`,
which resolves *no* global at all: only the opcodes of plain containers and scalars
(list, dict, tuple, str, bytes, int, float, bool, None) can build anything, so a pickle that
asks for a class or function (``os.system`` in a ``__reduce__``, ``builtins.eval``...) is
refused with :class:`UnsafePickle` before anything is called. A ``BUILD`` opcode (state set
on a list or dict) is refused the same way; a refs file above :data:`MAX_PICKLE_BYTES`, a
length field asking for more memory than exists, or nesting too deep is a one-line
:class:`~owl_data.sources.SourceError`. Ids (``ref_id``, ``ann_id``, ``image_id``, ``id``)
must be integers or strings (:func:`~owl_data.sources._common.source_id`): a ref with a
list or object there is ``malformed_ref``, an instances entry with one is skipped (refs
naming it are ``unknown_annotation`` / ``unknown_image``); a ``ref_id`` seen before is
``duplicate_ref`` (items ``ref:<ref_id>:<k>#<index in the list>``).

Spec: ``DIR[?refs=FILE&instances=FILE&images=DIR]``; defaults: the one ``refs(*).p`` in
``DIR`` (several: name one), ``DIR/instances.json``, images the first of ``DIR/images``,
``DIR/train2014``, ``DIR/../images/mscoco/images/train2014``, ``DIR/../train2014``.

Rows: per sentence (the item, keyed ``ref:<ref_id>:<sentence index>``), a grounding pair
(expression -> box and box -> expression) with the sentence's ``sent`` (``raw`` when
``sent`` is empty) and the annotation's box. Split: the ref's own ``split`` (``train``,
``val``, ``testA``, ``testB``, ``test``). Reject reasons (stage ``read``):
``malformed_ref``, ``duplicate_ref``, ``unknown_annotation``, ``unknown_image``, ``malformed_image_entry``,
``no_geometry``, ``empty_text``, ``missing_image``, ``path_outside_source``.
"""

from __future__ import annotations

import io
import pickle
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from owl_data.ingest.files import FileProblem, read_regular
from owl_data.ingest.numbers import is_finite_number
from owl_data.records import Box, Record, Reject, TextRow
from owl_data.sources import SourceError, SourceOptions
from owl_data.sources._common import (
    STAGE, Located, first_existing, image_ref, image_scenes, load_json, option_path, parse_spec, spec_frame, reject_items,
    source_id,
)

__all__ = ["read", "load_refs", "UnsafePickle", "PlainUnpickler", "MAX_PICKLE_BYTES"]

MAX_PICKLE_BYTES = 1 << 30  # the largest refs file read (refs(umd).p of RefCOCOg is ~50 MB)

OPTIONS = {"refs": "refs(unc|google|umd).p", "instances": "COCO instances JSON",
           "images": "folder of the COCO train2014 images"}


class UnsafePickle(SourceError):
    """A pickle that asks for a class or function: refused, nothing was called."""


class PlainUnpickler(pickle.Unpickler):
    """An unpickler that admits plain containers and scalars only (no global is resolved)."""

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102
        raise UnsafePickle(
            f"refused: the pickle asks for {module}.{name}; only plain containers and scalars are admitted")

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102
        raise UnsafePickle("refused: the pickle uses persistent ids")


def load_refs(path: Path) -> Any:
    """Load a refs pickle with :class:`PlainUnpickler` (Python 2 strings decoded as UTF-8,
    Latin-1 when that fails).

    Raises:
        UnsafePickle: the pickle asks for anything but plain containers and scalars.
        SourceError: the file is missing or not a pickle.
    """
    try:
        data = read_regular(path, max_bytes=MAX_PICKLE_BYTES, what="annotation")
    except FileProblem as exc:
        hint = f" (the limit of a refs pickle is {MAX_PICKLE_BYTES >> 30} GiB; is it the right file?)" \
            if exc.reason == "file_too_large" else ""
        raise SourceError(f"refcoco: cannot read {exc.detail}{hint}") from None
    last: Exception | None = None
    for encoding in ("utf-8", "latin1"):
        try:
            return PlainUnpickler(io.BytesIO(data), encoding=encoding).load()
        except UnsafePickle as exc:
            raise UnsafePickle(f"refcoco: {path.name}: {exc}") from None
        except UnicodeDecodeError as exc:
            last = exc
        except AttributeError:  # BUILD on a list/dict: state set on a plain container
            raise UnsafePickle(f"refcoco: {path.name}: refused: the pickle sets state on an object (BUILD); "
                               "only plain containers and scalars are admitted") from None
        except MemoryError:
            raise SourceError(f"refcoco: {path} is not a readable pickle: a length field asks for more "
                              "memory than there is (corrupt or hostile file)") from None
        except RecursionError:
            raise SourceError(f"refcoco: {path} is not a readable pickle: nested too deeply") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, OverflowError) as exc:
            raise SourceError(f"refcoco: {path} is not a readable pickle: {exc}") from None
    raise SourceError(f"refcoco: {path}: undecodable strings: {last}")


def _by_id(entries: Any) -> dict[int | str, dict]:
    """Entries of a COCO list by their ``id``; entries that are not objects or whose id is
    not an integer or a string are skipped (the first of a repeated id wins)."""
    out: dict[int | str, dict] = {}
    for e in entries if isinstance(entries, list) else []:
        k = source_id(e.get("id")) if isinstance(e, dict) else None
        if k is not None:
            out.setdefault(k, e)
    return out


def _find(root: Path, opts: dict[str, str]) -> tuple[Path, Path, Path]:
    if "refs" in opts:
        refs = option_path(root, opts["refs"])
    else:
        found = sorted(p for p in root.glob("refs(*).p") if p.is_file())
        if len(found) != 1:
            raise SourceError(f"refcoco: {len(found)} refs(*).p files in {root}: name one with ?refs=FILE")
        refs = found[0]
    inst = option_path(root, opts.get("instances", "instances.json"))
    if "images" in opts:
        images = option_path(root, opts["images"])
    else:
        images = first_existing([root / "images", root / "train2014",
                                 root.parent / "images" / "mscoco" / "images" / "train2014",
                                 root.parent / "train2014"])
        if images is None:
            raise SourceError(f"refcoco: no COCO images folder found for {root}: give ?images=DIR")
    if not images.is_dir():
        raise SourceError(f"refcoco: images folder {images} does not exist")
    return refs, inst, images


@dataclass(frozen=True)
class _Instances:
    """The parts of the COCO instances file the refs point into, each by its id."""

    path: Path
    annotations: dict[int | str, dict]
    images: dict[int | str, dict]
    categories: dict[int | str, Any]


@dataclass(frozen=True)
class _RefRows:
    """The grounding rows of one ref: image id, the ref's split (None when it has none), rows."""

    image: int | str
    split: str | None
    rows: list[TextRow]


def _load_instances(path: Path) -> _Instances:
    """Read ``instances.json``.

    Raises:
        SourceError: unreadable, or without ``images`` and ``annotations`` lists.
    """
    coco = load_json(path, "refcoco")
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list) \
            or not isinstance(coco.get("annotations"), list):
        raise SourceError(f"refcoco: {path} needs 'images' and 'annotations' lists")
    cats = {k: c.get("name") for k, c in _by_id(coco.get("categories") or []).items()}
    return _Instances(path, _by_id(coco["annotations"]), _by_id(coco["images"]), cats)


def _sentence(s: Any) -> str:
    """A sentence's ``sent`` (``raw`` when ``sent`` is empty), whitespace collapsed; "" if none."""
    text = ""
    if isinstance(s, dict):
        text = s.get("sent") if isinstance(s.get("sent"), str) and s["sent"].strip() else s.get("raw", "")
    return " ".join(text.split()) if isinstance(text, str) else ""


def _ref_rows(name: str, ref: dict, items: list[str], inst: _Instances) -> Iterator[Reject | _RefRows]:
    """The Rejects of one ref's sentences and then its rows (one grounding row a sentence)."""
    ann_id = source_id(ref.get("ann_id"))
    if ann_id is None:
        yield from reject_items(name, items, "malformed_ref", "ann_id is not an integer or a string")
        return
    ann = inst.annotations.get(ann_id)
    if ann is None:
        yield from reject_items(name, items, "unknown_annotation", f"ann_id {ann_id!r} not in {inst.path.name}")
        return
    iid = source_id(ann.get("image_id", ref.get("image_id")))
    if iid is None or iid not in inst.images:
        yield from reject_items(name, items, "unknown_image",
                                f"image_id {str(ann.get('image_id', ref.get('image_id')))[:40]}")
        return
    bb = ann.get("bbox")
    if not (isinstance(bb, list) and len(bb) == 4 and all(is_finite_number(v) for v in bb)):
        yield from reject_items(name, items, "no_geometry", f"annotation {ann_id!r} has no [x, y, w, h] bbox")
        return
    x, y, w, h = (float(v) for v in bb)
    category = inst.categories.get(source_id(ref.get("category_id")))
    rows = []
    for it, s in zip(items, ref["sentences"]):
        text = _sentence(s)
        if not text:
            yield Reject(name, it, STAGE, "empty_text", "sentence without text")
            continue
        rows.append(TextRow(task="grounding", item=it, expression=text,
                            category=category if isinstance(category, str) else None,
                            box=Box(x, y, x + w, y + h)))
    yield _RefRows(iid, ref.get("split") if isinstance(ref.get("split"), str) else None, rows)


def _refs(name: str, refs: list, inst: _Instances) -> Iterator[Reject | _RefRows]:
    """Every ref of the list checked in turn: its Rejects, then its rows."""
    seen_refs: dict[int | str, int] = {}
    for index, ref in enumerate(refs):
        if not isinstance(ref, dict):
            yield Reject(name, f"ref:#{index}", STAGE, "malformed_ref", f"entry {index} is not an object")
            continue
        rid = source_id(ref.get("ref_id")) if "ref_id" in ref else f"#{index}"
        sents = ref.get("sentences")
        if rid is None:
            yield Reject(name, f"ref:#{index}", STAGE, "malformed_ref", "ref_id is not an integer or a string")
            continue
        if not isinstance(sents, list) or not sents:
            yield Reject(name, f"ref:{rid}", STAGE, "malformed_ref", "no sentences list")
            continue
        if rid in seen_refs:
            yield from reject_items(name, (f"ref:{rid}:{k}#{index}" for k in range(len(sents))), "duplicate_ref",
                                    f"ref_id {rid!r} already read at entry {seen_refs[rid]}")
            continue
        seen_refs[rid] = index
        yield from _ref_rows(name, ref, [f"ref:{rid}:{k}" for k in range(len(sents))], inst)


def _locate(name: str, images: Path, entry: dict, iid: int | str, split: str | None, frame: str) -> Located:
    """The image of an ``images`` entry; it must state file_name, width and height."""
    fn, w, h = entry.get("file_name"), entry.get("width"), entry.get("height")
    if not isinstance(fn, str) or not isinstance(w, int) or not isinstance(h, int):
        return "malformed_image_entry", f"image {iid!r} needs file_name, width, height"
    return image_ref(name, images, fn, split=split, declared=(w, h), frame=frame)


def read(spec: str, options: SourceOptions) -> Iterator[Record]:
    """Read a RefCOCO-family folder; yield one Scene per image (its sentences) and Rejects.

    Raises:
        UnsafePickle: the refs pickle asks for anything but plain data.
        SourceError: missing files, unreadable JSON or pickle, a refs file that is not a list.
    """
    root, opts = parse_spec("refcoco", spec, OPTIONS)
    if not root.is_dir():
        raise SourceError(f"refcoco: {root} is not a folder")
    refs_path, inst_path, images = _find(root, opts)
    refs = load_refs(refs_path)
    if not isinstance(refs, list):
        raise SourceError(f"refcoco: {refs_path.name} holds {type(refs).__name__}, expected a list of refs")
    inst = _load_instances(inst_path)
    name = options.name
    per_image: dict[int | str, list[TextRow]] = defaultdict(list)
    split_of: dict[int | str, str] = {}
    for got in _refs(name, refs, inst):
        if isinstance(got, Reject):
            yield got
            continue
        if got.split:  # the first ref of an image that names a split gives the image's
            split_of.setdefault(got.image, got.split)
        if got.rows:
            per_image[got.image].extend(got.rows)
    yield from image_scenes(
        name, per_image, lambda iid: _locate(name, images, inst.images[iid], iid, split_of.get(iid), spec_frame(opts)))
