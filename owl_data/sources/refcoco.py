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
refused with :class:`UnsafePickle` before anything is called.

Spec: ``DIR[?refs=FILE&instances=FILE&images=DIR]``; defaults: the one ``refs(*).p`` in
``DIR`` (several: name one), ``DIR/instances.json``, images the first of ``DIR/images``,
``DIR/train2014``, ``DIR/../images/mscoco/images/train2014``, ``DIR/../train2014``.

Rows: per sentence (the item, keyed ``ref:<ref_id>:<sentence index>``), a grounding pair
(expression -> box and box -> expression) with the sentence's ``sent`` (``raw`` when
``sent`` is empty) and the annotation's box. Split: the ref's own ``split`` (``train``,
``val``, ``testA``, ``testB``, ``test``). Reject reasons (stage ``read``):
``malformed_ref``, ``unknown_annotation``, ``unknown_image``, ``malformed_image_entry``,
``no_geometry``, ``empty_text``, ``missing_image``, ``path_outside_source``.
"""

from __future__ import annotations

import io
import pickle
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

from owl_data.numbers import is_finite_number
from owl_data.records import Box, Record, Reject, Scene, TextRow
from owl_data.sources import SourceError, SourceOptions
from owl_data.sources._common import first_existing, image_ref, load_json, option_path, parse_spec

__all__ = ["read", "load_refs", "UnsafePickle", "PlainUnpickler"]

STAGE = "read"
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
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"refcoco: cannot read {path}: {exc}") from None
    last: Exception | None = None
    for encoding in ("utf-8", "latin1"):
        try:
            return PlainUnpickler(io.BytesIO(data), encoding=encoding).load()
        except UnsafePickle as exc:
            raise UnsafePickle(f"refcoco: {path.name}: {exc}") from None
        except UnicodeDecodeError as exc:
            last = exc
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as exc:
            raise SourceError(f"refcoco: {path} is not a readable pickle: {exc}") from None
    raise SourceError(f"refcoco: {path}: undecodable strings: {last}")


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
    coco = load_json(inst_path, "refcoco")
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list) \
            or not isinstance(coco.get("annotations"), list):
        raise SourceError(f"refcoco: {inst_path} needs 'images' and 'annotations' lists")
    anns = {a["id"]: a for a in coco["annotations"] if isinstance(a, dict) and "id" in a}
    imgs = {i["id"]: i for i in coco["images"] if isinstance(i, dict) and "id" in i}
    cats = {c["id"]: c.get("name") for c in coco.get("categories", []) if isinstance(c, dict) and "id" in c}
    name = options.name
    per_image: dict[Any, list[TextRow]] = defaultdict(list)
    split_of: dict[Any, str] = {}
    for index, ref in enumerate(refs):
        rid = ref.get("ref_id", f"#{index}") if isinstance(ref, dict) else f"#{index}"
        sents = ref.get("sentences") if isinstance(ref, dict) else None
        if not isinstance(sents, list) or not sents:
            yield Reject(name, f"ref:{rid}", STAGE, "malformed_ref", "no sentences list")
            continue
        items = [f"ref:{rid}:{k}" for k in range(len(sents))]

        def reject_all(reason: str, detail: str) -> Iterator[Reject]:
            for it in items:
                yield Reject(name, it, STAGE, reason, detail)

        ann = anns.get(ref.get("ann_id"))
        if ann is None:
            yield from reject_all("unknown_annotation", f"ann_id {ref.get('ann_id')!r} not in {inst_path.name}")
            continue
        iid = ann.get("image_id", ref.get("image_id"))
        if iid not in imgs:
            yield from reject_all("unknown_image", f"image_id {iid!r}")
            continue
        bb = ann.get("bbox")
        if not (isinstance(bb, list) and len(bb) == 4 and all(is_finite_number(v) for v in bb)):
            yield from reject_all("no_geometry", f"annotation {ann.get('id')!r} has no [x, y, w, h] bbox")
            continue
        x, y, w, h = (float(v) for v in bb)
        split = ref.get("split") if isinstance(ref.get("split"), str) else None
        if split:
            split_of.setdefault(iid, split)
        for k, (it, s) in enumerate(zip(items, sents)):
            text = ""
            if isinstance(s, dict):
                text = s.get("sent") if isinstance(s.get("sent"), str) and s["sent"].strip() else s.get("raw", "")
            text = " ".join(text.split()) if isinstance(text, str) else ""
            if not text:
                yield Reject(name, it, STAGE, "empty_text", "sentence without text")
                continue
            per_image[iid].append(TextRow(task="grounding", item=it, expression=text,
                                          category=cats.get(ref.get("category_id")), box=Box(x, y, x + w, y + h)))
    for iid in sorted(per_image, key=lambda v: (isinstance(v, str), v)):
        e = imgs[iid]
        fn, w, h = e.get("file_name"), e.get("width"), e.get("height")
        if not isinstance(fn, str) or not isinstance(w, int) or not isinstance(h, int):
            ref_: Any = ("malformed_image_entry", f"image {iid!r} needs file_name, width, height")
        else:
            ref_ = image_ref(name, images, fn, split=split_of.get(iid), declared=(w, h))
        if isinstance(ref_, tuple):
            for tr in per_image[iid]:
                yield Reject(name, tr.item, STAGE, *ref_)
            continue
        yield Scene(ref=ref_, rows=per_image[iid], sample_points=False)
